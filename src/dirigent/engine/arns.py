"""Amazon Resource Names for the engine's resources, with a configurable region and account."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dirigent.engine.errors import InvalidArn, InvalidName

# AWS: 1-80 characters; no whitespace, brackets, wildcards, quotes or control characters.
_NAME = re.compile(r"^[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]{1,80}$")


@dataclass(frozen=True, slots=True)
class Arns:
    region: str = "us-east-1"
    account: str = "123456789012"
    partition: str = "aws"

    def _prefix(self) -> str:
        return f"arn:{self.partition}:states:{self.region}:{self.account}"

    def state_machine(self, name: str) -> str:
        return f"{self._prefix()}:stateMachine:{name}"

    def execution(self, machine_name: str, name: str) -> str:
        return f"{self._prefix()}:execution:{machine_name}:{name}"

    def activity(self, name: str) -> str:
        return f"{self._prefix()}:activity:{name}"

    def map_run(self, machine_name: str, label: str) -> str:
        return f"{self._prefix()}:mapRun:{machine_name}/{label}"

    def parse(self, arn: str, kinds: tuple[str, ...]) -> tuple[str, list[str]]:
        """``(kind, parts after the kind)`` of a Step Functions ARN, else :class:`InvalidArn`."""
        parts = arn.split(":") if isinstance(arn, str) else []
        if len(parts) < 7 or parts[0] != "arn" or parts[2] != "states" or parts[5] not in kinds:
            raise InvalidArn(f"Invalid Arn: 'Resource type not valid in this context: {arn}'")
        return parts[5], parts[6:]


def check_name(name: object, what: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidName(
            f"Invalid Name: '{name}'"
            if isinstance(name, str)
            else f"Invalid {what}: expected a string"
        )
    return name
