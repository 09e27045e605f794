"""Read ``mesh.routes``: each service's rules, what they match and what they do.

```yaml
mesh:
  routes:
    payments:                      # the service called
      timeout: 2                   # defaults for every rule below ...
      retries: {attempts: 3, per_try_timeout: 0.5, retry_on: [5xx, reset]}
      rules:                       # ... first match wins
        - name: canary
          match:
            - headers: {x-canary: {present: true}}
          split: {v2: 100}
        - name: charges
          match: [{path: {prefix: /charge}, method: POST}]
          split: {v1: 90, v2: 10}
          fault: {abort: {status: 503, percent: 1}}
          mirror: {service: payments, subset: v2, percent: 5}   # see section_mirror
```

A rule's own ``timeout``, ``retries``, ``fault``, ``headers``,
``rate_limit``, ``split`` or ``mirror`` replaces the service's default as a whole (as
each Istio HTTPRoute carries its own); after the rules comes a catch-all,
``default``, made of the service-level settings alone. A split names subsets
of the service's destination rule, with weights that add up to 100.

This module must never raise on a user's mistake: problems are recorded on
the :class:`Reader` and the loader raises once, with all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from yaml.nodes import MappingNode, Node

from dirigent.manifest.reader import Fields, Reader, line_of
from dirigent.mesh.config import HttpRoute
from dirigent.mesh.policy.fault import Abort, Delay, Fault
from dirigent.mesh.policy.headers import HeaderOps, HeaderRewrite
from dirigent.mesh.policy.mirror import Mirror
from dirigent.mesh.policy.ratelimit import TokenBucket
from dirigent.mesh.policy.retry import RetryOn, RetryPolicy
from dirigent.mesh.policy.routing import HeaderMatch, RouteMatch, StringMatch
from dirigent.mesh.policy.split import Destination, Split
from dirigent.mesh.section_mirror import read_mirror
from dirigent.mesh.section_values import (
    header_name,
    key_name,
    name,
    optional,
    percent,
    required,
    status,
    string_match,
    strings,
    text,
)

ROUTE_KEYS = ("timeout", "retries", "fault", "headers", "rate_limit", "split", "mirror")
RULE_KEYS = ("name", "match", *ROUTE_KEYS)
RETRY_KEYS = ("attempts", "per_try_timeout", "retry_on", "retriable_status_codes", "backoff")
RETRY_ON = tuple(condition.value for condition in RetryOn)

#: subset name -> labels, for each service that has a destination rule
Subsets = Mapping[str, Mapping[str, Mapping[str, str]]]


@dataclass(frozen=True, slots=True)
class _Settings:
    """What one level (service or rule) says; None where it says nothing."""

    timeout: float | None = None
    retries: RetryPolicy | None = None
    fault: Fault | None = None
    headers: HeaderRewrite | None = None
    rate_limit: TokenBucket | None = None
    split: Split | None = None
    mirror: Mirror | None = None

    def route(self, name: str, matches: tuple[RouteMatch, ...], base: _Settings) -> HttpRoute:
        split = self.split or base.split
        assert split is not None  # the service level always carries one
        return HttpRoute(
            name=name,
            matches=matches,
            split=split,
            timeout=self.timeout if self.timeout is not None else base.timeout,
            retries=self.retries or base.retries or RetryPolicy(),
            fault=self.fault or base.fault,
            headers=self.headers or base.headers or HeaderRewrite(),
            rate_limit=self.rate_limit or base.rate_limit,
            mirror=self.mirror or base.mirror,
        )


def read_routes(
    reader: Reader, node: Node, path: str, subsets: Subsets
) -> Mapping[str, tuple[HttpRoute, ...]]:
    """Every service's routes; services with problems are left out (nothing loads then)."""
    routes: dict[str, tuple[HttpRoute, ...]] = {}
    fields = reader.fields(node, path, None)
    if fields is None:
        return MappingProxyType(routes)
    for service, service_node in fields.nodes.items():
        at = fields.at(service)
        if not key_name(reader, service, service_node, at):
            continue
        read = _service_routes(
            reader, service_node, at, service, subsets.get(service), every_subset=subsets
        )
        if read is not None:
            routes[service] = read
    return MappingProxyType(routes)


def _service_routes(
    reader: Reader,
    node: Node,
    path: str,
    service: str,
    subsets: Mapping[str, Mapping[str, str]] | None,
    *,
    every_subset: Subsets,
) -> tuple[HttpRoute, ...] | None:
    fields = reader.fields(node, path, (*ROUTE_KEYS, "rules"))
    if fields is None:
        return None
    base = _settings(reader, fields, service, subsets, every_subset)
    if base.split is None:
        base = _Settings(
            base.timeout, base.retries, base.fault, base.headers, base.rate_limit,
            Split.of([Destination(service)]), base.mirror,
        )  # fmt: skip
    routes: list[HttpRoute] = []
    seen: dict[str, int] = {}
    rule_items: list[tuple[str, Node]] = []
    if (rules_node := fields.get("rules")) is not None:
        rule_items = reader.items(rules_node, fields.at("rules")) or []
    for at, rule_node in rule_items:
        rule = _rule(
            reader, rule_node, at, service=service, subsets=subsets, base=base,
            index=len(routes), every_subset=every_subset,
        )  # fmt: skip
        if rule is None:
            continue
        if rule.name in seen or rule.name == "default":
            reader.error(line_of(rule_node), f"{at}.name", _duplicate(rule.name, seen))
            continue
        seen[rule.name] = line_of(rule_node)
        routes.append(rule)
    routes.append(base.route("default", (), base))
    return tuple(routes)


def _duplicate(rule: str, seen: Mapping[str, int]) -> str:
    if rule == "default":
        return "'default' names the catch-all route; choose another name"
    return f"duplicate rule name (first used on line {seen[rule]})"


def _rule(
    reader: Reader,
    node: Node,
    path: str,
    *,
    service: str,
    subsets: Mapping[str, Mapping[str, str]] | None,
    base: _Settings,
    index: int,
    every_subset: Subsets,
) -> HttpRoute | None:
    fields = reader.fields(node, path, RULE_KEYS)
    if fields is None:
        return None
    rule_name = optional(fields, "name", lambda n, at: name(reader, n, at), f"rule-{index}")
    matches: tuple[RouteMatch, ...] = ()
    if (match_node := fields.get("match")) is not None:
        matches = _matches(reader, match_node, fields.at("match")) or ()
    own = _settings(reader, fields, service, subsets, every_subset)
    return own.route(rule_name, matches, base)


def _settings(
    reader: Reader,
    fields: Fields,
    service: str,
    subsets: Mapping[str, Mapping[str, str]] | None,
    every_subset: Subsets,
) -> _Settings:
    def seconds(node: Node, at: str) -> float | None:
        return reader.number(node, at, positive=True)

    return _Settings(
        timeout=optional(fields, "timeout", seconds, None),
        retries=optional(fields, "retries", lambda n, at: _retries(reader, n, at), None),
        fault=optional(fields, "fault", lambda n, at: _fault(reader, n, at), None),
        headers=optional(fields, "headers", lambda n, at: _headers(reader, n, at), None),
        rate_limit=optional(fields, "rate_limit", lambda n, at: _bucket(reader, n, at), None),
        split=optional(
            fields, "split", lambda n, at: _split(reader, n, at, service, subsets), None
        ),
        mirror=optional(
            fields, "mirror", lambda n, at: read_mirror(reader, n, at, every_subset), None
        ),
    )


def _matches(reader: Reader, node: Node, path: str) -> tuple[RouteMatch, ...] | None:
    # One mapping is accepted as a list of one, the commonest case.
    items = [(path, node)] if isinstance(node, MappingNode) else reader.items(node, path)
    if items is None:
        return None
    matches = [_match(reader, item, at) for at, item in items]
    return tuple(match for match in matches if match is not None)


def _match(reader: Reader, node: Node, path: str) -> RouteMatch | None:
    fields = reader.fields(node, path, ("path", "method", "headers"))
    if fields is None:
        return None

    def read_match(n: Node, at: str) -> StringMatch | None:
        return string_match(reader, n, at)

    headers: list[HeaderMatch] = []
    if (headers_node := fields.get("headers")) is not None:
        header_fields = reader.fields(headers_node, fields.at("headers"), None)
        for key, value_node in header_fields.nodes.items() if header_fields else ():
            at = f"{fields.at('headers')}.{key}"
            header = header_name(reader, key, value_node, at)
            condition = _header_condition(reader, value_node, at, header)
            if condition is not None:
                headers.append(condition)
    return RouteMatch(
        path=optional(fields, "path", read_match, None),
        method=optional(fields, "method", read_match, None),
        headers=tuple(headers),
    )


def _header_condition(
    reader: Reader, node: Node, path: str, header: str | None
) -> HeaderMatch | None:
    if isinstance(node, MappingNode) and any(
        getattr(key, "value", None) == "present" for key, _ in node.value
    ):
        fields = reader.fields(node, path, ("present",))
        present = reader.scalar(fields.nodes["present"]) if fields else None
        if not isinstance(present, bool):
            reader.error(line_of(node), f"{path}.present", "expected true or false")
            return None
        return None if header is None else HeaderMatch(header, absent=not present)
    value = string_match(reader, node, path)
    return None if value is None or header is None else HeaderMatch(header, value)


def _retries(reader: Reader, node: Node, path: str) -> RetryPolicy | None:
    fields = reader.fields(node, path, RETRY_KEYS)
    if fields is None:
        return None
    default = RetryPolicy()
    conditions = optional(
        fields, "retry_on", lambda n, at: _retry_on(reader, n, at), default.retry_on
    )
    statuses = optional(
        fields, "retriable_status_codes", lambda n, at: _statuses(reader, n, at), None
    )
    if statuses is not None:
        # Listing codes is asking for them to be retried: Envoy's separate
        # "retriable-status-codes" condition is implied rather than demanded.
        conditions = conditions | {RetryOn.RETRIABLE_STATUS_CODES}
    base, cap = default.base_interval, default.max_interval
    if (backoff_node := fields.get("backoff")) is not None:
        base, cap = _backoff(reader, backoff_node, fields.at("backoff"), base)
    return RetryPolicy(
        attempts=optional(
            fields, "attempts", lambda n, at: reader.integer(n, at, minimum=0), default.attempts
        ),
        per_try_timeout=optional(
            fields, "per_try_timeout", lambda n, at: reader.number(n, at, positive=True), None
        ),
        retry_on=conditions,
        retriable_statuses=statuses if statuses is not None else default.retriable_statuses,
        base_interval=base,
        max_interval=cap,
    )


def _retry_on(reader: Reader, node: Node, path: str) -> frozenset[RetryOn] | None:
    # Istio writes the conditions as one comma-separated string; a list is
    # accepted too, and reads better in YAML.
    value = reader.scalar(node)
    if isinstance(value, str):
        items = [(path, part.strip()) for part in value.split(",")]
    else:
        listed = strings(reader, node, path)
        if listed is None:
            return None
        items = [(f"{path}[{i}]", part) for i, part in enumerate(listed)]
    conditions: set[RetryOn] = set()
    for at, part in items:
        if part not in RETRY_ON:
            reader.error(line_of(node), at, f"expected one of: {', '.join(RETRY_ON)}")
            return None
        conditions.add(RetryOn(part))
    return frozenset(conditions)


def _statuses(reader: Reader, node: Node, path: str) -> frozenset[int] | None:
    items = reader.items(node, path)
    if items is None:
        return None
    codes = [status(reader, item, at) for at, item in items]
    if any(code is None for code in codes):
        return None
    return frozenset(code for code in codes if code is not None)


def _backoff(reader: Reader, node: Node, path: str, base: float) -> tuple[float, float | None]:
    fields = reader.fields(node, path, ("base_interval", "max_interval"))
    if fields is None:
        return base, None

    def seconds(n: Node, at: str) -> float | None:
        return reader.number(n, at, positive=True)

    base = optional(fields, "base_interval", seconds, base)
    cap = optional(fields, "max_interval", seconds, None)
    if cap is not None and cap < base:
        reader.error(
            line_of(fields.nodes["max_interval"]),
            fields.at("max_interval"),
            f"expected a number >= base_interval ({base:g})",
        )
    return base, cap


def _fault(reader: Reader, node: Node, path: str) -> Fault | None:
    fields = reader.fields(node, path, ("delay", "abort"))
    if fields is None:
        return None
    delay = abort = None
    if (delay_node := fields.get("delay")) is not None:
        delay_fields = reader.fields(delay_node, fields.at("delay"), ("fixed", "percent"))
        if delay_fields is not None:
            seconds = required(
                delay_fields, reader, "fixed", lambda n, at: reader.number(n, at, positive=True)
            )
            share = optional(delay_fields, "percent", lambda n, at: percent(reader, n, at), 100.0)
            delay = None if seconds is None else Delay(seconds, share)
    if (abort_node := fields.get("abort")) is not None:
        abort_fields = reader.fields(abort_node, fields.at("abort"), ("status", "percent"))
        if abort_fields is not None:
            code = required(abort_fields, reader, "status", lambda n, at: status(reader, n, at))
            share = optional(abort_fields, "percent", lambda n, at: percent(reader, n, at), 100.0)
            abort = None if code is None else Abort(code, share)
    if not fields.nodes:
        reader.error(fields.line, path, "expected 'delay', 'abort' or both")
    return Fault(delay, abort)


def _headers(reader: Reader, node: Node, path: str) -> HeaderRewrite | None:
    fields = reader.fields(node, path, ("request", "response"))
    if fields is None:
        return None
    request = optional(fields, "request", lambda n, at: _header_ops(reader, n, at), HeaderOps())
    response = optional(fields, "response", lambda n, at: _header_ops(reader, n, at), HeaderOps())
    return HeaderRewrite(request, response)


def _header_ops(reader: Reader, node: Node, path: str) -> HeaderOps | None:
    fields = reader.fields(node, path, ("set", "add", "remove"))
    if fields is None:
        return None
    values: dict[str, dict[str, str]] = {"set": {}, "add": {}}
    for op, found in values.items():
        if (op_node := fields.get(op)) is None:
            continue
        op_fields = reader.fields(op_node, fields.at(op), None)
        for key, value_node in op_fields.nodes.items() if op_fields else ():
            at = f"{fields.at(op)}.{key}"
            header = header_name(reader, key, value_node, at)
            value = text(reader, value_node, at)
            if header is not None and value is not None:
                found[header] = value
    removed: set[str] = set()
    if (remove_node := fields.get("remove")) is not None:
        for at, item in reader.items(remove_node, fields.at("remove")) or ():
            header = reader.string(item, at)
            if header is not None and header_name(reader, header, item, at) is not None:
                removed.add(header.lower())
    return HeaderOps(
        set=MappingProxyType(values["set"]),
        add=MappingProxyType(values["add"]),
        remove=frozenset(removed),
    )


def _bucket(reader: Reader, node: Node, path: str) -> TokenBucket | None:
    fields = reader.fields(node, path, ("max_tokens", "tokens_per_fill", "fill_interval"))
    if fields is None:
        return None

    def count(n: Node, at: str) -> int | None:
        return reader.integer(n, at, minimum=1)

    most = required(fields, reader, "max_tokens", count)
    per_fill = optional(fields, "tokens_per_fill", count, most)
    interval = optional(
        fields, "fill_interval", lambda n, at: reader.number(n, at, positive=True), 1.0
    )
    if most is None or per_fill is None:
        return None
    return TokenBucket(most, per_fill, interval)


def _split(
    reader: Reader,
    node: Node,
    path: str,
    service: str,
    subsets: Mapping[str, Mapping[str, str]] | None,
) -> Split | None:
    fields = reader.fields(node, path, None)
    if fields is None:
        return None
    destinations: list[Destination] = []
    for subset, weight_node in fields.nodes.items():
        at = fields.at(subset)
        weight = reader.integer(weight_node, at, minimum=0)
        if subsets is None or subset not in subsets:
            reader.error(reader.owner_line(weight_node), at, _unknown_subset(service, subsets))
        elif weight is not None:
            destinations.append(Destination(service, subset, weight))
    if len(destinations) != len(fields.nodes):
        return None
    total = sum(destination.weight for destination in destinations)
    if total != 100:
        reader.error(fields.line, path, f"weights must add up to 100, not {total}")
        return None
    return Split.of(destinations)


def _unknown_subset(service: str, subsets: Mapping[str, Mapping[str, str]] | None) -> str:
    where = f"mesh.destinations.{service}.subsets"
    if not subsets:
        return f"unknown subset; {where} defines none"
    return f"unknown subset; {where} defines: {', '.join(sorted(subsets))}"
