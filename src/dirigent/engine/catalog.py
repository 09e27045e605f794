"""State machines, their published versions and aliases, activities and tags.

Operations take and return the shapes of the Step Functions API (camelCase
keys, datetimes for dates) so the protocol layer stays a thin translation.
Every check happens before the transaction writes anything.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from dirigent.asl.parser import parse_definition
from dirigent.engine.arns import Arns, check_name
from dirigent.engine.errors import (
    ActivityDoesNotExist,
    ConflictException,
    InvalidArn,
    InvalidDefinition,
    ResourceNotFound,
    StateMachineAlreadyExists,
    StateMachineDoesNotExist,
    TooManyTags,
    ValidationException,
)
from dirigent.errors import DefinitionError
from dirigent.store.port import Conflict, Store, Transaction
from dirigent.store.records import ActivityRecord, AliasRecord, MachineRecord, VersionRecord

MACHINE_TYPES = ("STANDARD", "EXPRESS")
MAX_TAGS = 50
PAGE = 100


def when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def check_definition(definition: object, machine_type: str = "STANDARD") -> str:
    if not isinstance(definition, str):
        raise ValidationException("definition: expected a string holding the ASL JSON")
    try:
        parse_definition(
            definition, machine_type="EXPRESS" if machine_type == "EXPRESS" else "STANDARD"
        )
    except DefinitionError as exc:
        details = "; ".join(str(d) for d in exc.diagnostics[:5])
        raise InvalidDefinition(f"Invalid State Machine Definition: '{details}'") from exc
    return definition


def page_token(after: str) -> str:
    return after


class Catalog:
    def __init__(self, store: Store, arns: Arns, clock: Callable[[], float]) -> None:
        self.store = store
        self.arns = arns
        self.clock = clock

    # ------------------------------------------------------------------ lookups

    def machine(self, tx: Transaction, arn: object) -> MachineRecord:
        if not isinstance(arn, str):
            raise InvalidArn("Invalid Arn: 'stateMachineArn is required'")
        self.arns.parse(arn, ("stateMachine",))
        record = tx.get_machine(arn)
        if record is None:
            raise StateMachineDoesNotExist(f"State Machine Does Not Exist: '{arn}'")
        return record

    def resolve_target(
        self, tx: Transaction, arn: object, pick: Callable[[list[float]], int]
    ) -> tuple[MachineRecord, str, str, str]:
        """What a StartExecution ARN names: ``(machine, definition, role, started_with)``.

        A plain machine ARN runs its current definition; ``machine:3`` runs
        version 3; ``machine:alias`` runs a version chosen by the alias's weights.
        """
        if not isinstance(arn, str):
            raise InvalidArn("Invalid Arn: 'stateMachineArn is required'")
        _, parts = self.arns.parse(arn, ("stateMachine",))
        if len(parts) == 1:
            machine = self.machine(tx, arn)
            return machine, machine.definition, machine.role_arn, arn
        if len(parts) != 2:
            raise InvalidArn(f"Invalid Arn: '{arn}'")
        base = arn.rsplit(":", 1)[0]
        machine = self.machine(tx, base)
        qualifier = parts[1]
        if qualifier.isdigit():
            version = tx.get_version(arn)
            if version is None:
                raise StateMachineDoesNotExist(f"State Machine Does Not Exist: '{arn}'")
            return machine, version.definition, version.role_arn, arn
        alias = tx.get_alias(arn)
        if alias is None:
            raise ResourceNotFound(f"Resource not found: '{arn}'")
        routes = json.loads(alias.routing)
        chosen = routes[pick([float(r["weight"]) for r in routes])]
        version = tx.get_version(chosen["stateMachineVersionArn"])
        if version is None:
            raise StateMachineDoesNotExist(
                f"State Machine Does Not Exist: '{chosen['stateMachineVersionArn']}'"
            )
        return machine, version.definition, version.role_arn, arn

    # ------------------------------------------------------------------ state machines

    def create_state_machine(self, request: Mapping[str, Any]) -> dict[str, Any]:
        name = check_name(request.get("name"))
        machine_type = request.get("type", "STANDARD")
        if machine_type not in MACHINE_TYPES:
            raise ValidationException(
                f"1 validation error detected: Value '{machine_type}' at 'type' failed to "
                "satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]"
            )
        definition = check_definition(request.get("definition"), machine_type)
        role = str(request.get("roleArn", ""))
        tags = _tags(request.get("tags", []))
        now = self.clock()
        arn = self.arns.state_machine(name)
        record = MachineRecord(
            arn=arn,
            name=name,
            type=machine_type,
            definition=definition,
            role_arn=role,
            created_at=now,
            updated_at=now,
            revision_id=uuid.uuid4().hex,
            description=str(request.get("versionDescription", "")),
            logging=json.dumps(request.get("loggingConfiguration", {})),
            tracing=json.dumps(request.get("tracingConfiguration", {})),
        )
        with self.store.transaction() as tx:
            existing = tx.get_machine(arn)
            if existing is not None:
                if (
                    existing.definition == definition
                    and existing.role_arn == role
                    and existing.type == machine_type
                ):
                    return {"stateMachineArn": arn, "creationDate": when(existing.created_at)}
                raise StateMachineAlreadyExists(f"State Machine Already Exists: '{arn}'")
            try:
                tx.insert_machine(record)
            except Conflict as exc:
                raise StateMachineAlreadyExists(f"State Machine Already Exists: '{arn}'") from exc
            if tags:
                tx.set_tags(arn, tags)
            result: dict[str, Any] = {"stateMachineArn": arn, "creationDate": when(now)}
            if request.get("publish"):
                result["stateMachineVersionArn"] = self._publish(tx, record, now)
        return result

    def update_state_machine(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.store.transaction() as tx:
            record = self.machine(tx, request.get("stateMachineArn"))
            changes: dict[str, Any] = {}
            if "definition" in request:
                changes["definition"] = check_definition(request["definition"], record.type)
            if "roleArn" in request:
                changes["role_arn"] = str(request["roleArn"])
            if "loggingConfiguration" in request:
                changes["logging"] = json.dumps(request["loggingConfiguration"])
            if "tracingConfiguration" in request:
                changes["tracing"] = json.dumps(request["tracingConfiguration"])
            if not changes and not request.get("publish"):
                raise ValidationException(
                    "Either the definition, the roleArn, the loggingConfiguration or the "
                    "tracingConfiguration must be specified"
                )
            now = self.clock()
            if changes:
                record = replace(record, **changes, updated_at=now, revision_id=uuid.uuid4().hex)
                tx.update_machine(record)
            result: dict[str, Any] = {"updateDate": when(now), "revisionId": record.revision_id}
            if request.get("publish"):
                result["stateMachineVersionArn"] = self._publish(
                    tx, record, now, str(request.get("versionDescription", ""))
                )
        return result

    def delete_state_machine(self, request: Mapping[str, Any]) -> dict[str, Any]:
        arn = request.get("stateMachineArn")
        with self.store.transaction() as tx:
            if not isinstance(arn, str):
                raise InvalidArn("Invalid Arn: 'stateMachineArn is required'")
            kind, parts = self.arns.parse(arn, ("stateMachine",))
            del kind
            if len(parts) != 1:
                raise ValidationException("Use DeleteStateMachineVersion for a version ARN")
            if tx.get_machine(arn) is not None:
                tx.delete_machine(arn)
        return {}

    def describe_state_machine(self, request: Mapping[str, Any]) -> dict[str, Any]:
        arn = request.get("stateMachineArn")
        with self.store.transaction() as tx:
            if isinstance(arn, str) and arn.count(":") == 7 and arn.rsplit(":", 1)[1].isdigit():
                base = self.machine(tx, arn.rsplit(":", 1)[0])
                version = tx.get_version(arn)
                if version is None:
                    raise StateMachineDoesNotExist(f"State Machine Does Not Exist: '{arn}'")
                return {
                    **self._describe(base),
                    "stateMachineArn": arn,
                    "definition": version.definition,
                    "roleArn": version.role_arn,
                    "revisionId": version.revision_id,
                    "description": version.description,
                    "creationDate": when(version.created_at),
                }
            return self._describe(self.machine(tx, arn))

    def describe_record(self, record: MachineRecord) -> dict[str, Any]:
        return self._describe(record)

    def _describe(self, record: MachineRecord) -> dict[str, Any]:
        return {
            "stateMachineArn": record.arn,
            "name": record.name,
            "status": "ACTIVE",
            "definition": record.definition,
            "roleArn": record.role_arn,
            "type": record.type,
            "creationDate": when(record.created_at),
            "loggingConfiguration": json.loads(record.logging)
            or {"level": "OFF", "includeExecutionData": False},
            "tracingConfiguration": json.loads(record.tracing) or {"enabled": False},
            "revisionId": record.revision_id,
        }

    def list_state_machines(self, request: Mapping[str, Any]) -> dict[str, Any]:
        limit = _limit(request)
        after = _token(request)
        with self.store.transaction() as tx:
            rows = tx.list_machines(after, limit + 1)
        result: dict[str, Any] = {
            "stateMachines": [
                {
                    "stateMachineArn": r.arn,
                    "name": r.name,
                    "type": r.type,
                    "creationDate": when(r.created_at),
                }
                for r in rows[:limit]
            ]
        }
        if len(rows) > limit:
            result["nextToken"] = rows[limit - 1].arn
        return result

    # ------------------------------------------------------------------ versions and aliases

    def _publish(
        self, tx: Transaction, record: MachineRecord, now: float, description: str = ""
    ) -> str:
        versions = tx.list_versions(record.arn)
        if versions and versions[0].revision_id == record.revision_id:
            return versions[0].arn  # publishing an unchanged revision returns the same version
        number = (versions[0].version + 1) if versions else 1
        arn = f"{record.arn}:{number}"
        tx.insert_version(
            VersionRecord(
                arn,
                record.arn,
                number,
                record.definition,
                record.role_arn,
                record.revision_id,
                now,
                description,
            )
        )
        return arn

    def publish_state_machine_version(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.store.transaction() as tx:
            record = self.machine(tx, request.get("stateMachineArn"))
            revision = request.get("revisionId")
            if revision is not None and revision != record.revision_id:
                raise ConflictException(
                    f"Failed to publish the State Machine version for revision {revision}. "
                    f"The current State Machine revision is {record.revision_id}."
                )
            now = self.clock()
            arn = self._publish(tx, record, now, str(request.get("description", "")))
            version = tx.get_version(arn)
            assert version is not None
        return {"creationDate": when(version.created_at), "stateMachineVersionArn": arn}

    def list_state_machine_versions(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.store.transaction() as tx:
            record = self.machine(tx, request.get("stateMachineArn"))
            versions = tx.list_versions(record.arn)
        return {
            "stateMachineVersions": [
                {"stateMachineVersionArn": v.arn, "creationDate": when(v.created_at)}
                for v in versions
            ]
        }

    def delete_state_machine_version(self, request: Mapping[str, Any]) -> dict[str, Any]:
        arn = request.get("stateMachineVersionArn")
        if not isinstance(arn, str) or not arn.rsplit(":", 1)[-1].isdigit():
            raise InvalidArn(f"Invalid Arn: '{arn}'")
        with self.store.transaction() as tx:
            tx.delete_version(arn)
        return {}

    def create_state_machine_alias(self, request: Mapping[str, Any]) -> dict[str, Any]:
        name = check_name(request.get("name"))
        routing = _routing(request.get("routingConfiguration"))
        now = self.clock()
        with self.store.transaction() as tx:
            first = routing[0]["stateMachineVersionArn"]
            machine = self.machine(tx, first.rsplit(":", 1)[0])
            for route in routing:
                if tx.get_version(route["stateMachineVersionArn"]) is None:
                    raise ResourceNotFound(
                        f"Resource not found: '{route['stateMachineVersionArn']}'"
                    )
            arn = f"{machine.arn}:{name}"
            existing = tx.get_alias(arn)
            if existing is not None:
                if json.loads(existing.routing) == routing:
                    return {"stateMachineAliasArn": arn, "creationDate": when(existing.created_at)}
                raise ConflictException(f"Alias already exists: '{arn}'")
            tx.put_alias(
                AliasRecord(
                    arn,
                    machine.arn,
                    name,
                    json.dumps(routing),
                    now,
                    now,
                    str(request.get("description", "")),
                )
            )
        return {"stateMachineAliasArn": arn, "creationDate": when(now)}

    def _alias(self, tx: Transaction, arn: object) -> AliasRecord:
        if not isinstance(arn, str):
            raise InvalidArn("Invalid Arn: 'stateMachineAliasArn is required'")
        alias = tx.get_alias(arn)
        if alias is None:
            raise ResourceNotFound(f"Resource not found: '{arn}'")
        return alias

    def describe_state_machine_alias(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.store.transaction() as tx:
            alias = self._alias(tx, request.get("stateMachineAliasArn"))
        return {
            "stateMachineAliasArn": alias.arn,
            "name": alias.name,
            "description": alias.description,
            "routingConfiguration": json.loads(alias.routing),
            "creationDate": when(alias.created_at),
            "updateDate": when(alias.updated_at),
        }

    def list_state_machine_aliases(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.store.transaction() as tx:
            record = self.machine(tx, request.get("stateMachineArn"))
            aliases = tx.list_aliases(record.arn)
        return {
            "stateMachineAliases": [
                {"stateMachineAliasArn": a.arn, "creationDate": when(a.created_at)} for a in aliases
            ]
        }

    def update_state_machine_alias(self, request: Mapping[str, Any]) -> dict[str, Any]:
        now = self.clock()
        with self.store.transaction() as tx:
            alias = self._alias(tx, request.get("stateMachineAliasArn"))
            if "routingConfiguration" in request:
                alias = replace(
                    alias, routing=json.dumps(_routing(request["routingConfiguration"]))
                )
            if "description" in request:
                alias = replace(alias, description=str(request["description"]))
            tx.put_alias(replace(alias, updated_at=now))
        return {"updateDate": when(now)}

    def delete_state_machine_alias(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.store.transaction() as tx:
            alias = self._alias(tx, request.get("stateMachineAliasArn"))
            tx.delete_alias(alias.arn)
        return {}

    # ------------------------------------------------------------------ activities

    def create_activity(self, request: Mapping[str, Any]) -> dict[str, Any]:
        name = check_name(request.get("name"))
        arn = self.arns.activity(name)
        now = self.clock()
        with self.store.transaction() as tx:
            existing = tx.get_activity(arn)
            if existing is not None:
                return {"activityArn": arn, "creationDate": when(existing.created_at)}
            tx.insert_activity(ActivityRecord(arn, name, now))
            tags = _tags(request.get("tags", []))
            if tags:
                tx.set_tags(arn, tags)
        return {"activityArn": arn, "creationDate": when(now)}

    def activity(self, tx: Transaction, arn: object) -> ActivityRecord:
        if not isinstance(arn, str):
            raise InvalidArn("Invalid Arn: 'activityArn is required'")
        self.arns.parse(arn, ("activity",))
        record = tx.get_activity(arn)
        if record is None:
            raise ActivityDoesNotExist(f"Activity Does Not Exist: '{arn}'")
        return record

    def describe_activity(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.store.transaction() as tx:
            record = self.activity(tx, request.get("activityArn"))
        return {
            "activityArn": record.arn,
            "name": record.name,
            "creationDate": when(record.created_at),
        }

    def delete_activity(self, request: Mapping[str, Any]) -> dict[str, Any]:
        arn = request.get("activityArn")
        if not isinstance(arn, str):
            raise InvalidArn("Invalid Arn: 'activityArn is required'")
        self.arns.parse(arn, ("activity",))
        with self.store.transaction() as tx:
            tx.delete_activity(arn)
        return {}

    def list_activities(self, request: Mapping[str, Any]) -> dict[str, Any]:
        limit = _limit(request)
        with self.store.transaction() as tx:
            rows = tx.list_activities(_token(request), limit + 1)
        result: dict[str, Any] = {
            "activities": [
                {"activityArn": r.arn, "name": r.name, "creationDate": when(r.created_at)}
                for r in rows[:limit]
            ]
        }
        if len(rows) > limit:
            result["nextToken"] = rows[limit - 1].arn
        return result

    # ------------------------------------------------------------------ tags

    def _taggable(self, tx: Transaction, arn: object) -> str:
        if not isinstance(arn, str):
            raise InvalidArn("Invalid Arn: 'resourceArn is required'")
        kind, _ = self.arns.parse(arn, ("stateMachine", "activity"))
        exists = tx.get_machine(arn) if kind == "stateMachine" else tx.get_activity(arn)
        if exists is None:
            raise ResourceNotFound(f"Resource not found: '{arn}'")
        return arn

    def tag_resource(self, request: Mapping[str, Any]) -> dict[str, Any]:
        tags = _tags(request.get("tags"))
        with self.store.transaction() as tx:
            arn = self._taggable(tx, request.get("resourceArn"))
            if len({**tx.list_tags(arn), **tags}) > MAX_TAGS:
                raise TooManyTags(f"Too many tags: at most {MAX_TAGS} per resource")
            tx.set_tags(arn, tags)
        return {}

    def untag_resource(self, request: Mapping[str, Any]) -> dict[str, Any]:
        keys = request.get("tagKeys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValidationException("tagKeys: expected a list of strings")
        with self.store.transaction() as tx:
            arn = self._taggable(tx, request.get("resourceArn"))
            tx.remove_tags(arn, keys)
        return {}

    def list_tags_for_resource(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.store.transaction() as tx:
            arn = self._taggable(tx, request.get("resourceArn"))
            tags = tx.list_tags(arn)
        return {"tags": [{"key": k, "value": v} for k, v in tags.items()]}


def _tags(value: object) -> dict[str, str]:
    if value is None:
        raise ValidationException("tags: expected a list of {key, value}")
    if not isinstance(value, list):
        raise ValidationException("tags: expected a list of {key, value}")
    tags: dict[str, str] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise ValidationException("tags: every tag needs a string key")
        tags[item["key"]] = str(item.get("value", ""))
    if len(tags) > MAX_TAGS:
        raise TooManyTags(f"Too many tags: at most {MAX_TAGS} per resource")
    return tags


def _routing(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise ValidationException("routingConfiguration: expected one or two routes")
    routes = []
    for route in value:
        if not isinstance(route, dict) or not isinstance(route.get("stateMachineVersionArn"), str):
            raise ValidationException("routingConfiguration: every route needs a version ARN")
        weight = route.get("weight")
        if not isinstance(weight, int) or not 0 <= weight <= 100:
            raise ValidationException("routingConfiguration: weight must be 0 to 100")
        routes.append({"stateMachineVersionArn": route["stateMachineVersionArn"], "weight": weight})
    if sum(r["weight"] for r in routes) != 100:
        raise ValidationException("routingConfiguration: the weights must add up to 100")
    return routes


def _limit(request: Mapping[str, Any]) -> int:
    value = request.get("maxResults", 0) or PAGE
    if not isinstance(value, int) or not 0 < value <= 1000:
        raise ValidationException("maxResults: expected 1 to 1000")
    return value


def _token(request: Mapping[str, Any]) -> str | None:
    token = request.get("nextToken")
    if token is not None and not isinstance(token, str):
        raise ValidationException("nextToken: expected a string")
    return token
