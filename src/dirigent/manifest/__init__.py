"""The ``dirigent.yaml`` model and its loader; every error names file, line and path.

Pure: this package never touches the environment, a clock, a socket or a
process. It reads the manifest file and nothing else.
"""

from dirigent.manifest.loader import SectionParser, load_manifest, parse_manifest
from dirigent.manifest.model import (
    Amount,
    Autoscale,
    Backoff,
    Behavior,
    FunctionRef,
    Manifest,
    Probe,
    Probes,
    Resources,
    RestartPolicy,
    Rollout,
    ScalingPolicy,
    ScalingRules,
    Service,
    StopPolicy,
)
from dirigent.manifest.reader import InvalidManifest, Problem, Reader

__all__ = [
    "Amount",
    "Autoscale",
    "Backoff",
    "Behavior",
    "FunctionRef",
    "InvalidManifest",
    "Manifest",
    "Probe",
    "Probes",
    "Problem",
    "Reader",
    "Resources",
    "RestartPolicy",
    "Rollout",
    "ScalingPolicy",
    "ScalingRules",
    "SectionParser",
    "Service",
    "StopPolicy",
    "load_manifest",
    "parse_manifest",
]
