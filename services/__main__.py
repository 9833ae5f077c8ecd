"""CLI: ``python -m services {up,down,status,logs,reset,env} [NAME ...]``."""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from services import proc, stack
from services.base import services_home


def _echo(message: str) -> None:
    print(message, flush=True)


def _cmd_up(args: argparse.Namespace) -> int:
    infos = stack.ensure_up(args.names or None, echo=_echo)
    for name, info in infos.items():
        print(f"{name:<11} {info.url}  (pid {info.pid})")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    stack.down(args.names or None, echo=_echo)
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    stack.reset(args.names or None, echo=_echo)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    rows = stack.status()
    print(f"home: {services_home()}")
    print(
        f"{'service':<11} {'state':<9} {'pid':>8} {'port':>6} {'rss MB':>8} {'pss MB':>8} {'procs':>5} "
        f"{'uptime':>8}  url"
    )
    for r in rows:

        def fmt(v, suffix=""):
            return "-" if v is None else f"{v}{suffix}"

        print(
            f"{r['name']:<11} {r['state']:<9} {fmt(r['pid']):>8} {r['port']:>6} {fmt(r['rss_mb']):>8} "
            f"{fmt(r['pss_mb']):>8} {fmt(r['procs']):>5} {fmt(r['uptime_s'], 's'):>8}  {r['url']}"
        )
    if args.check and any(r["state"] != "running" for r in rows):
        return 1
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    svc = stack.get(args.name)
    print(proc.tail(svc.log_path, args.n))
    if args.follow:
        with open(svc.log_path, errors="replace") as fh:
            fh.seek(0, 2)
            try:
                while True:
                    line = fh.readline()
                    if line:
                        print(line, end="", flush=True)
                    else:
                        time.sleep(0.5)
            except KeyboardInterrupt:
                pass
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    for info in stack.connection_info(args.names or None).values():
        for key, value in info.env.items():
            print(f"export {key}={shlex.quote(value)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    names = ", ".join(stack.SERVICE_NAMES)
    parser = argparse.ArgumentParser(
        prog="python -m services",
        description=f"Install, start and stop the afluente dev services ({names}) on this machine. "
        "Data, logs and downloads live under $AFLUENTE_SERVICES_HOME (default <repo>/.services).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="install (once) and start services, wait until ready (default: all)")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.set_defaults(func=_cmd_up)
    p = sub.add_parser("down", help="stop services (SIGTERM, SIGKILL after a timeout)")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.set_defaults(func=_cmd_down)
    p = sub.add_parser("status", help="state, pid, port and memory of each service")
    p.add_argument("--check", action="store_true", help="exit 1 unless every service is running")
    p.set_defaults(func=_cmd_status)
    p = sub.add_parser("logs", help="print the last lines of a service's log")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-n", type=int, default=40, help="number of lines (default 40)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.set_defaults(func=_cmd_logs)
    p = sub.add_parser("reset", help="stop services and wipe their data (downloads are kept)")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.set_defaults(func=_cmd_reset)
    p = sub.add_parser(
        "env",
        help="print `export VAR=...` lines for the resources (KAFKA_BOOTSTRAP_SERVERS, ...)",
    )
    p.add_argument("names", nargs="*", metavar="NAME")
    p.set_defaults(func=_cmd_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except proc.SetupError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
