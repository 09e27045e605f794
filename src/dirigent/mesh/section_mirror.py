"""Read a route's ``mirror``: where a copy of its requests goes, and what share of them.

```yaml
mesh:
  routes:
    payments:
      mirror: {service: payments, subset: v2, percent: 10}   # Istio's mirror + mirrorPercentage
```

``service`` is required; ``subset`` must be one the mirrored service's
destination rule defines; ``percent`` (0-100) defaults to 100, as Istio's
``mirrorPercentage`` does when absent. Like the other route settings, a
rule's own ``mirror`` replaces the service-level one.

This module must never raise on a user's mistake: problems are recorded on
the :class:`~dirigent.manifest.reader.Reader` with their line and path.
"""

from __future__ import annotations

from collections.abc import Mapping

from yaml.nodes import Node

from dirigent.manifest.reader import Reader, line_of
from dirigent.mesh.policy.mirror import Mirror
from dirigent.mesh.section_values import name, optional, percent, required

MIRROR_KEYS = ("service", "subset", "percent")


def read_mirror(
    reader: Reader, node: Node, path: str, subsets: Mapping[str, Mapping[str, Mapping[str, str]]]
) -> Mirror | None:
    """The mirror a route names; None (with problems recorded) if it does not hold."""
    fields = reader.fields(node, path, MIRROR_KEYS)
    if fields is None:
        return None
    service = required(fields, reader, "service", lambda n, at: name(reader, n, at))
    subset = optional(fields, "subset", lambda n, at: name(reader, n, at), None)
    share = optional(fields, "percent", lambda n, at: percent(reader, n, at), 100.0)
    if service is None:
        return None
    if subset is not None:
        defined = subsets.get(service) or {}
        if subset not in defined:
            where = f"mesh.destinations.{service}.subsets"
            known = f"defines: {', '.join(sorted(defined))}" if defined else "defines none"
            subset_node = fields.nodes["subset"]
            reader.error(
                line_of(subset_node), fields.at("subset"), f"unknown subset; {where} {known}"
            )
            return None
    return Mirror(service, subset, share)
