"""`manage.py twin_agent --listen HOST:5757 --token-file FILE`: serve twins to remote callers (root)."""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from twin import get_backend
from twin.agent import (
    DEFAULT_PORT,
    AgentConfig,
    TwinAgent,
    agent_serve,
    parse_listen,
    tls_server_context,
    token_read,
)
from twin.base import TwinError
from twin.capacity import default_budget_mb


class Command(BaseCommand):
    help = ("Serve the twin backend over HTTP/JSON under /v1/ (twin/schema/agent-v1.json) for the `http` "
            "backend of callers inside AEGIS_EGRESS_ALLOW holding the bearer token. Needs root (netns).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--listen", default=f"127.0.0.1:{DEFAULT_PORT}",
                            help=f"HOST:PORT to listen on (default 127.0.0.1:{DEFAULT_PORT}; port 0 picks one)")
        parser.add_argument("--token-file", default=settings.AEGIS_AGENT_TOKEN_FILE or None,
                            help="file holding the bearer token (default AEGIS_AGENT_TOKEN_FILE)")
        parser.add_argument("--backend", default="netns", choices=["netns", "simulator"],
                            help="what serves the twins (simulator: no root, for trying the protocol)")
        parser.add_argument("--budget-mb", type=int, default=settings.AEGIS_AGENT_BUDGET_MB,
                            help="memory for twins in MB (default AEGIS_AGENT_BUDGET_MB; 0 = MemAvailable - 1 GB)")
        parser.add_argument("--underlay", default=settings.AEGIS_AGENT_UNDERLAY or None,
                            help="this host's address for VXLAN links to other agents (a lab split across hosts; "
                                 "default AEGIS_AGENT_UNDERLAY)")
        parser.add_argument("--tls-cert", default=settings.AEGIS_AGENT_TLS_CERT or None, metavar="FILE",
                            help="serve HTTPS with this certificate (PEM; default AEGIS_AGENT_TLS_CERT)")
        parser.add_argument("--tls-key", default=settings.AEGIS_AGENT_TLS_KEY or None, metavar="FILE",
                            help="the certificate's private key (PEM; default AEGIS_AGENT_TLS_KEY)")
        parser.add_argument("--tls-ca", default=settings.AEGIS_AGENT_TLS_CA or None, metavar="FILE",
                            help="mutual TLS: answer only callers with a client certificate this CA signed "
                                 "(PEM; default AEGIS_AGENT_TLS_CA). The bearer token is still required")
        parser.add_argument("--warm-mb", type=int, default=settings.AEGIS_WARM_TWINS_MB,
                            help="keep converged baseline twins between callers, up to this many MB of the "
                                 "budget (default AEGIS_WARM_TWINS_MB; 0 = every twin is torn down after its run)")
        parser.add_argument("--lease-s", type=float, default=float(settings.AEGIS_AGENT_LEASE_S),
                            help="default lease: a twin not renewed for this long is torn down")

    def handle(self, *args: Any, **opts: Any) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if not opts["token_file"]:
            raise CommandError("no token: pass --token-file FILE or set AEGIS_AGENT_TOKEN_FILE")
        try:
            host, port = parse_listen(opts["listen"])
            if opts["underlay"]:
                ipaddress.ip_address(opts["underlay"])
            token = token_read(opts["token_file"])
            tls = None
            if opts["tls_cert"] or opts["tls_key"] or opts["tls_ca"]:
                if not (opts["tls_cert"] and opts["tls_key"]):
                    raise ValueError("TLS needs both --tls-cert and --tls-key (a --tls-ca alone cannot serve HTTPS)")
                tls = tls_server_context(opts["tls_cert"], opts["tls_key"], opts["tls_ca"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            backend = get_backend(opts["backend"])
        except TwinError as exc:
            raise CommandError(str(exc)) from None
        budget = opts["budget_mb"] or default_budget_mb()
        if opts["warm_mb"] < 0:
            raise CommandError(f"--warm-mb must be 0 or more, not {opts['warm_mb']}")
        warm_mb = min(opts["warm_mb"], budget)
        agent = TwinAgent(AgentConfig(token=token, allow=list(settings.AEGIS_EGRESS_ALLOW), budget_mb=budget,
                                      lease_s=opts["lease_s"], underlay=opts["underlay"], warm_mb=warm_mb), backend)
        holder: dict[str, Any] = {}

        def ready(server: Any) -> None:
            holder["server"] = server
            bound = server.server_address
            # The first line is read by scripts and tests to learn the port (with --listen HOST:0).
            scheme = ("https, client certificates required" if opts["tls_ca"] else "https") if tls else "http"
            self.stdout.write(f"twin agent {agent.agent_id} listening on {bound[0]}:{bound[1]} "
                              f"(backend {backend.name}, budget {budget} MB, warm twins "
                              f"{f'up to {warm_mb} MB' if agent.pool is not None else 'off'}, "
                              f"lease {opts['lease_s']:g} s, {scheme})")
            self.stdout.flush()

        def stop(signum: int, _frame: Any) -> None:
            # shutdown() waits for serve_forever to return: call it off the main thread.
            if "server" in holder:
                threading.Thread(target=holder["server"].shutdown, daemon=True).start()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, stop)
        try:
            agent_serve(agent, host, port, ready=ready, tls=tls)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.stdout.write("twin agent stopped; every twin it held was torn down")
