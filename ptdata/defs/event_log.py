"""Dagster's SQLite event log with its engines kept, instead of one made and disposed per statement.

`SqliteEventLogStorage._connect` creates a SQLAlchemy engine with a NullPool for every connection: each event a
run stores opens the run's database and often the index database, and closing the last connection of a WAL
database checkpoints it. A partition's run stores ~350 events (71 checks planned and evaluated, outputs,
materializations), which cost ~3 s of a 17 s run of a small partition on 2 cores. This subclass keeps one engine
per shard for the few shards a process is using (a run writes its own and the index), so a connection is reused;
everything else, the schema and the files, is Dagster's. `ptdata`'s CLI names it in the `dagster.yaml` it writes
(ARCHITECTURE.md, "Dagster instance").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy import Connection, Engine, create_engine

# shards with a kept engine: a run's own and the index, and a few more for the UI, which reads many runs' shards
# (each engine keeps one idle SQLite connection, so this also bounds the open files)
KEPT_ENGINES = 4


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose connections come from kept engines (least recently used one disposed)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                pool_size=1,
                max_overflow=-1,  # _initdb may hold a second connection for a moment
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
        self._engines[shard] = engine
        while len(self._engines) > KEPT_ENGINES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # as the parent's: one connection at a time per storage, under its lock, the database created on first use
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _dispose_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        # wipe unlinks the databases: no kept connection may outlive its file
        self._dispose_engines()
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()
