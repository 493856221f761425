"""Fixed cost of a one-shot `callqa run`: a batch with nothing to do, and a re-score after a
rulebook change (answered from the analysis cache), each with Prefect's ephemeral API and with a
running Prefect server (PREFECT_API_URL).

    PYTHONPATH=. python -m bench.bench_startup [--code OTHER_CHECKOUT] [--calls 2] [--repeat 2]

``--code`` times another checkout (e.g. the previous commit, unpacked with ``git archive``) on the
same finished batch, for a before/after.  Figures are wall seconds of whole CLI processes; the
modules each run imported are printed beside them, since that is what the time goes to.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pyannote.audio", "lightning", "faster_whisper", "ctranslate2", "torch", "prefect")
DRIVER = (
    "import json, sys\nfrom pipelines.shell.cli import app\ntry:\n    app(sys.argv[1:], standalone_mode=False)\n"
    "finally:\n    print('IMPORTED=' + json.dumps([m for m in %r if m in sys.modules]))\n" % (HEAVY,)
)


def _cli(code: Path, args: list[str], env_extra: dict[str, str]) -> tuple[float, list[str]]:
    """Wall seconds of one `callqa ARGS` process run from checkout ``code``, and what it imported."""
    env = {**os.environ, "PYTHONPATH": str(code), "PREFECT_LOGGING_LEVEL": "WARNING", **env_extra}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", DRIVER, *args], env=env, cwd=code, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"callqa {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("IMPORTED=")][-1]
    return wall, json.loads(line.removeprefix("IMPORTED="))


def _start_server(home: Path) -> tuple[subprocess.Popen, str, float]:
    """A local Prefect server on a free loopback port; returns it, its API URL and its start-up time."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return proc, url, time.perf_counter() - start
        except OSError:
            if proc.poll() is not None or time.perf_counter() - start > 300:
                raise SystemExit("the Prefect server did not start")
            time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, action="append", default=[], help="other checkout(s) to time too")
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    codes = [ROOT, *[c.resolve() for c in args.code]]

    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    calls, out = work / "calls", work / "out"
    calls.mkdir()
    for name in ["zh_good_stereo.flac", "zh_no_closing.wav"][: args.calls]:
        shutil.copy(ROOT / "samples" / "calls" / name, calls / name)
    first, imported = _cli(ROOT, ["run", str(calls), "--out", str(out)], {})
    print(f"first run ({args.calls} calls, transcribed): {first:.1f} s  imported {imported}")

    import qa_rules

    base = qa_rules.default_rulebook_path("zh").read_text(encoding="utf-8")
    server, url, server_s = _start_server(work / "prefect_home")
    print(f"prefect server start-up (once per host, not per run): {server_s:.1f} s")
    try:
        mark = 50
        for code in codes:
            for api, env in (("ephemeral API", {"PREFECT_API_URL": ""}), ("running server", {"PREFECT_API_URL": url})):
                if not env["PREFECT_API_URL"]:
                    env = {}
                    os.environ.pop("PREFECT_API_URL", None)
                idle, change = [], []
                for _ in range(args.repeat):
                    wall, imported = _cli(code, ["run", str(calls), "--out", str(out)], env)
                    idle.append(wall)
                    mark += 1
                    rulebook = work / f"rules_{mark}.yaml"
                    rulebook.write_text(base.replace("pass_mark: 80", f"pass_mark: {mark}"), encoding="utf-8")
                    wall2, imported2 = _cli(code, ["run", str(calls), "--out", str(out), "--rulebook", str(rulebook)], env)
                    change.append(wall2)
                print(f"{code} [{api}]: nothing to do {min(idle):.1f} s (imported {imported}); "
                      f"rulebook change {min(change):.1f} s = {args.calls / min(change):.2f} calls/s (imported {imported2}); "
                      f"vs first run {min(idle) / first:.2f}× (nothing to do), {min(change) / first:.2f}× (rulebook change)")
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
