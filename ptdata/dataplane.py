"""The dataplane's client at the import path users write: `from ptdata.dataplane import Client`."""

from ptdata.rl.dataplane.client import Client, DataplaneError

__all__ = ["Client", "DataplaneError"]
