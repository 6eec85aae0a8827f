"""Child process of the fault-injection tests (see ``harness.py``); not a test module.

    python tests/faults/child.py ingest INDEX CORPUS --embedder bundled|hash [--kill-at stmt:N|fs:N] [--delay S]
    python tests/faults/child.py cli INDEX CORPUS --fault fsize:BYTES|deny:N

``ingest`` loads the embedder, prints READY, ingests CORPUS into INDEX (SIGKILLed at the
injection point, if any), prints DONE and the event counts as JSON. ``cli`` runs
``aspectrag ingest CORPUS --index INDEX`` with the hashing embedder under an I/O fault and
exits with the CLI's exit code.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys

from tests.faults.harness import Counter, hooks  # PYTHONPATH from harness.child_env()


def _embedder(kind: str, delay: float):  # type: ignore[no-untyped-def]
    if kind == "hash":
        from tests.fakes import HashEmbedder

        return HashEmbedder(delay=delay)
    from aspectrag.embed.hf import HFEmbedder

    return HFEmbedder()


def ingest(args: argparse.Namespace) -> int:
    from aspectrag.index import Index

    emb = _embedder(args.embedder, 0.0)
    emb.encode(["warm up"])  # model loaded before the ingest (and before any kill point)
    if args.delay:
        emb.delay = args.delay
    counter = Counter()
    if args.kill_at:
        kind, _, n = args.kill_at.partition(":")
        counter.kill_at = (kind, int(n))
    with hooks(counter):
        idx = Index(args.index, embedder=emb)
        print("READY", flush=True)
        counter.active = True
        rep = idx.ingest([args.corpus])
        counter.active = False
    print("DONE", flush=True)
    print(json.dumps({"stmt": counter.stmt, "fs": counter.fs, "chunks": rep.chunks}), flush=True)
    return 0


def cli(args: argparse.Namespace) -> int:
    from tests.fakes import HashEmbedder

    import aspectrag.embed.factory as factory
    from aspectrag.cli.main import app

    factory.build_embedder = lambda *a, **kw: HashEmbedder()  # type: ignore[assignment]
    kind, _, value = args.fault.partition(":")
    counter = Counter(deny_after=int(value) if kind == "deny" else None)
    argv = ["ingest", args.corpus, "--index", args.index]
    with hooks(counter):
        counter.active = True
        if kind == "fsize":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(value), int(value)))
        try:
            app(argv, prog_name="aspectrag")
        except SystemExit as e:
            return int(e.code or 0)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("ingest")
    a.add_argument("index")
    a.add_argument("corpus")
    a.add_argument("--embedder", default="bundled")
    a.add_argument("--kill-at")
    a.add_argument("--delay", type=float, default=0.0)
    b = sub.add_parser("cli")
    b.add_argument("index")
    b.add_argument("corpus")
    b.add_argument("--fault", required=True)
    args = ap.parse_args()
    return ingest(args) if args.mode == "ingest" else cli(args)


if __name__ == "__main__":
    sys.exit(main())
