"""The ptdata code location (workspace.yaml, `dagster ... -m ptdata.definitions`), built from the environment."""

from ptdata.defs.location import build_definitions

defs = build_definitions()
