"""Request metrics: what a series counts and how it renders in the Prometheus text format."""

from __future__ import annotations

from dirigent.mesh.telemetry import BUCKETS, Metrics


def lines(metrics: Metrics) -> set[str]:
    return set(metrics.render().decode().splitlines())


def test_a_finished_request_counts_once_by_status_and_leaves_flight() -> None:
    metrics = Metrics()
    series = metrics.series("source", "orders", "payments", "default")
    series.start()
    series.start()
    series.finish(200, 0.002)
    found = lines(metrics)
    labels = 'reporter="source",source="orders",destination="payments",route="default"'
    assert f'dirigent_mesh_requests_total{{{labels},status="200"}} 1' in found
    assert f"dirigent_mesh_requests_in_flight{{{labels}}} 1" in found


def test_histogram_buckets_are_cumulative_and_inclusive_of_their_bound() -> None:
    metrics = Metrics()
    series = metrics.series("source", "a", "b", "r")
    for seconds in (0.001, 0.001, 0.3, 100.0):
        series.start()
        series.finish(200, seconds)
    found = lines(metrics)
    labels = 'reporter="source",source="a",destination="b",route="r"'
    assert f'dirigent_mesh_request_duration_seconds_bucket{{{labels},le="0.001"}} 2' in found
    assert f'dirigent_mesh_request_duration_seconds_bucket{{{labels},le="0.25"}} 2' in found
    assert f'dirigent_mesh_request_duration_seconds_bucket{{{labels},le="0.5"}} 3' in found
    assert f'dirigent_mesh_request_duration_seconds_bucket{{{labels},le="10.0"}} 3' in found
    assert f'dirigent_mesh_request_duration_seconds_bucket{{{labels},le="+Inf"}} 4' in found
    assert f"dirigent_mesh_request_duration_seconds_count{{{labels}}} 4" in found
    assert len(series.buckets) == len(BUCKETS) + 1


def test_the_same_labels_give_the_same_series() -> None:
    metrics = Metrics()
    assert metrics.series("source", "a", "b", "r") is metrics.series("source", "a", "b", "r")


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    metrics.series("source", 'say "hi"\\\n', "b", "r").finish(200, 0.1)
    assert 'source="say \\"hi\\"\\\\\\n"' in metrics.render().decode()
