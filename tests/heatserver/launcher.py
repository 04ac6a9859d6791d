"""Run Heat's engine and API in one process, for tests.

Runs under the Python of the Heat virtualenv (see ``install.sh``), never
under the project's: it imports Heat. With ``transport_url = fake://`` the
engine and the API only see each other inside one process, so this script
starts both: the engine's RPC servers in threads, and the API's paste app
behind a threaded stdlib WSGI server bound to a free port.

When the API is ready it writes the port it listens on to ``--port-file``
(atomically); it exits by itself when the process ``--parent-pid`` goes away,
so a killed test run leaves no server behind.

Usage::

    python launcher.py --config-file heat.conf --port-file port \
        [--host 127.0.0.1] [--parent-pid PID]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socketserver
import sys
import threading
import time
from typing import Any
from wsgiref import simple_server

LOG = logging.getLogger("heat-test-launcher")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, default=0)
    return parser.parse_args(argv)


def _configure(config_file: str) -> None:
    """Load heat.conf into oslo.config without looking at ``sys.argv``."""
    from oslo_config import cfg
    from oslo_log import log as oslo_log

    from heat import version
    from heat.common import config

    oslo_log.register_options(cfg.CONF)
    cfg.CONF(args=[], project="heat", prog="heat-api",
             default_config_files=[config_file],
             version=version.version_info.version_string())
    oslo_log.setup(cfg.CONF, "heat")
    config.set_config_defaults()


def _tune_sqlite(engine: Any) -> None:
    """Make SQLite usable by the engine's concurrent threads.

    oslo.db emits a plain (deferred) ``BEGIN``; two threads that both read
    and then write then fail at once with "database is locked". Swap it for
    ``BEGIN IMMEDIATE`` (writers queue on the lock) and give every
    connection a busy timeout and WAL, so readers never block.
    """
    import sqlalchemy
    from sqlalchemy import event

    if engine.dialect.name != "sqlite":
        return
    removed = 0
    for listener in list(engine.dispatch.begin):
        if getattr(listener, "__name__", "") == "_sqlite_emit_begin":
            event.remove(engine, "begin", listener)
            removed += 1
    if not removed:
        LOG.warning("oslo.db's SQLite BEGIN listener not found; expect "
                    "'database is locked' under concurrent requests")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_con: Any, _record: Any) -> None:
        dbapi_con.execute("PRAGMA busy_timeout = 30000")
        dbapi_con.execute("PRAGMA journal_mode = WAL")

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        if "in_transaction" not in conn.info:
            conn.execute(sqlalchemy.text("BEGIN IMMEDIATE"))
            conn.info["in_transaction"] = True

    engine.dispose()  # pooled connections were opened without the pragmas


class _Handler(simple_server.WSGIRequestHandler):
    """Request handler that logs to the log file, not to stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        LOG.info("%s %s", self.address_string(), format % args)


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


def _watch_parent(parent_pid: int) -> None:
    """Exit as soon as the process that started us is gone."""
    while True:
        if os.getppid() != parent_pid:
            LOG.warning("parent %d is gone; exiting", parent_pid)
            os._exit(0)
        time.sleep(0.5)


def _write_port(path: str, port: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="ascii") as handle:
        handle.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Start the engine and the API; serve until killed."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.parent_pid:
        threading.Thread(target=_watch_parent, args=(args.parent_pid,),
                         daemon=True, name="parent-watch").start()

    from oslo_service import backend
    backend.init_backend(backend.BackendType.THREADING)

    _configure(args.config_file)
    from oslo_config import cfg

    from heat.common import messaging
    messaging.setup()
    # The engine service module registers options (auth_encryption_key,
    # ...) that the sanity check reads.
    from heat.engine import service as engine_service
    from heat.common import config
    config.startup_sanity_check()

    from heat.db import api as db_api
    from heat.db import migration
    started = time.monotonic()
    # Before the tuning: the migration inspects the schema on a second
    # connection while its own holds the transaction, which an immediate
    # (write-locking) BEGIN would block.
    migration.db_sync()
    _tune_sqlite(db_api.get_engine())
    LOG.info("database ready in %.2fs", time.monotonic() - started)

    from heat.rpc import api as rpc_api
    engine = engine_service.EngineService(cfg.CONF.host,
                                          rpc_api.ENGINE_TOPIC)
    engine.start()

    app = config.load_paste_app("heat-api")
    server = simple_server.make_server(args.host, args.port, app,
                                       server_class=_Server,
                                       handler_class=_Handler)
    port = server.server_address[1]
    _write_port(args.port_file, port)
    LOG.info("heat API listening on http://%s:%d", args.host, port)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
