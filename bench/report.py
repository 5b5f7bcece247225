"""Turning the measurements into the JSON result and the Markdown table, with the targets.

The targets are checked and reported here, never asserted: the machine is shared and
noisy, and a benchmark that fails on a slow minute tells nobody anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

INITIAL_TARGET = 1.5  # syncd's initial sync within 1.5x the floor's wall time
MEMORY_TARGET = 2.0  # peak memory at N=100,000 at most 2x that at N=10,000
INTERVAL_S = 60


#: The code a run measures: changes elsewhere (docs, tests, this folder) do not matter.
MEASURED = ("syncd", "connectors", "syncd_testkit", "pyproject.toml")


def code_version(root: str) -> dict[str, Any]:
    """The commit of the measured code, and its uncommitted changes (read-only git)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  check=True).stdout.rstrip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", *MEASURED).splitlines()]
    return {"head": git("rev-parse", "--short", "HEAD"),
            "commit": git("log", "-1", "--format=%h", "--", *MEASURED),
            "uncommitted": changed[:20]}


def write(out: Path, data: dict[str, Any], text: str) -> None:
    """A result as ``out`` (JSON, everything measured) and ``out`` with ``.md`` (``text``),
    and ``text`` on standard output."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, default=str) + "\n")
    out.with_suffix(".md").write_text(text + "\n")
    print(text)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True,
                                   check=True).stdout.strip())
    except (OSError, ValueError, subprocess.CalledProcessError):
        nproc = os.cpu_count() or 0
    return {"nproc": nproc, "cpu": model or platform.processor(),
            "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def _methods(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))


def requests_cell(phase: dict[str, Any]) -> str:
    """``REPORT 50, PUT 10,000``; batch envelopes also show the calls they carried."""
    req = phase.get("requests", {})
    http, calls = req.get("http", {}), req.get("calls", {})
    text = _methods(http) or "none"
    if calls != http:
        text += f" (calls: {_methods(calls)})"
    return text


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


def combine(syncd: dict[str, Any], floor: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per phase: syncd, its floor, and the ratio of their wall times."""
    floors = {p["name"]: p for p in (floor or {}).get("phases", [])}
    rows = []
    for phase in syncd["phases"]:
        f = floors.get(phase["name"])
        rows.append({"phase": phase["name"], "syncd": phase, "floor": f,
                     "wall_ratio": ratio(phase["wall_s"], f["wall_s"]) if f else None})
    return rows


def capacity(phases: dict[str, dict[str, Any]], owners: int, workers: int
             ) -> dict[str, Any]:
    """How many owners one process keeps in sync at a 60 s interval (see ``method``)."""
    idle = phases.get("idle")
    edit = phases.get("crm edits")
    settle = phases.get("crm edits settle")
    if not idle or not edit or not settle:
        return {}
    # A steady state with 1 % changing per interval: each cycle does the changes and
    # reads back the echo of the previous cycle's writes.
    change_wall = edit["wall_s"] + max(0.0, settle["wall_s"] - idle["wall_s"])
    change_cpu = edit["cpu_s"] + max(0.0, settle["cpu_s"] - idle["cpu_s"])
    per_idle = idle["per_account_s"]["mean"] or 0.0
    per_edit = (edit["per_account_s"]["mean"] or 0.0) + max(
        0.0, (settle["per_account_s"]["mean"] or 0.0) - per_idle)

    def owners_for(wall: float) -> int | None:
        return int(INTERVAL_S * owners / wall) if wall > 0 else None

    return {
        "method": (
            f"The {owners} accounts' cycles of a phase run on the pool of {workers} "
            f"workers, so one process handles {owners} owners per phase wall time; at a "
            f"{INTERVAL_S} s interval it keeps up with {INTERVAL_S} s x {owners} / wall "
            "owners before cycles overrun. The 1 %-change cycle is the 'crm edits' cycle "
            "plus what its settle cycle (reading back the echo) costs beyond an idle one. "
            "The naive figure (workers x 60 s / mean per-account cycle) assumes the "
            "workers never slow each other down; the CPU bound is 60 s of one core (the "
            "GIL) over the process CPU per account."),
        "idle_owners": owners_for(idle["wall_s"]),
        "one_percent_owners": owners_for(change_wall),
        "idle_naive_owners": int(workers * INTERVAL_S / per_idle) if per_idle else None,
        "one_percent_naive_owners": int(workers * INTERVAL_S / per_edit) if per_edit else None,
        "idle_cpu_bound_owners": owners_for(idle["cpu_s"]),
        "one_percent_cpu_bound_owners": owners_for(change_cpu),
        "idle_cycle_s_per_account": per_idle,
        "one_percent_cycle_s_per_account": round(per_edit, 4),
    }


def targets(provider: str, result: dict[str, Any], n: int, owners: int) -> list[dict[str, Any]]:
    """The issue's targets, checked against one provider's run."""
    phases = {p["name"]: p for p in result["syncd"]["phases"]}
    rows = {r["phase"]: r for r in result["rows"]}
    out: list[dict[str, Any]] = []

    def add(target: str, ok: bool | None, value: str) -> None:
        out.append({"target": target, "ok": ok, "value": value})

    idle = phases.get("idle")
    if idle:
        reqs = idle["http_requests"]
        sql = idle.get("sql", {})
        add("idle cycle: one request per calendar, zero writes",
            reqs <= owners and idle["writes"] == 0,
            f"{reqs} requests for {owners} calendars ({requests_cell(idle)}), "
            f"{idle['writes']} calendar writes; SQL per account: "
            f"{sql.get('select', 0) / owners:.1f} reads, {sql.get('write', 0) / owners:.1f} "
            "writes (lease, cursors, status)")
    edit = phases.get("crm edits")
    if idle and edit and edit["changes"]:
        extra = edit["http_requests"] - idle["http_requests"]
        add("change cycle grows with changes (requests beyond idle, per change)", None,
            f"{extra / edit['changes']:.2f} requests per change "
            f"({edit['changes']} changes, {requests_cell(edit)})")
    sizes: dict[str, int] = {}
    for p in result["syncd"]["phases"]:
        for size, count in p["requests"].get("batch_sizes", {}).items():
            sizes[size] = sizes.get(size, 0) + count
    if provider in ("google", "outlook"):
        limit = 50 if provider == "google" else 20
        biggest = max((int(s) for s in sizes), default=0)
        add(f"writes in batches of up to {limit}", biggest <= limit and biggest > 0,
            "batch sizes seen (size: count): "
            + ", ".join(f"{s}: {c}" for s, c in sorted(sizes.items(), key=lambda kv: int(kv[0]))))
    initial = rows.get("initial")
    if initial and initial["wall_ratio"] is not None:
        add(f"initial sync within {INITIAL_TARGET}x the floor's wall time",
            initial["wall_ratio"] <= INITIAL_TARGET,
            f"{initial['wall_ratio']}x ({initial['syncd']['wall_s']} s vs "
            f"{initial['floor']['wall_s']} s)")
    return out


def memory_targets(sweep: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Peak memory, and cycle costs, at N=100,000 against N=10,000 (the sweep)."""
    by_n = {(s["provider"], s["n"]): s for s in sweep if "peak_rss_mib" in s}
    out: list[dict[str, Any]] = []
    for provider in dict.fromkeys(p for p, _ in by_n):
        a, b = by_n.get((provider, 10_000)), by_n.get((provider, 100_000))
        if a is None or b is None:
            continue
        r = ratio(b["peak_rss_mib"], a["peak_rss_mib"])
        out.append({"target": f"{provider}: peak memory at N=100,000 at most {MEMORY_TARGET}x "
                              "N=10,000",
                    "ok": r is not None and r <= MEMORY_TARGET,
                    "value": f"{r}x ({b['peak_rss_mib']} MiB vs {a['peak_rss_mib']} MiB)"})
        pa = {p["name"]: p for p in a["phases"]}
        pb = {p["name"]: p for p in b["phases"]}
        for name in ("idle", "crm edits"):
            if name not in pa or name not in pb:
                continue
            x, y = pa[name], pb[name]
            out.append({
                "target": f"{provider}: {name} cycle does not grow with N (10x N, "
                          f"{y['changes'] / max(1, x['changes']):.0f}x changes)",
                "ok": None,
                "value": f"requests {x['http_requests']:,} -> {y['http_requests']:,}; "
                         f"CPU {x['cpu_s']:.2f} -> {y['cpu_s']:.2f} s "
                         f"({ratio(y['cpu_s'], x['cpu_s'])}x); wall {x['wall_s']:.2f} -> "
                         f"{y['wall_s']:.2f} s; SQL reads {x['sql'].get('select', 0):,} -> "
                         f"{y['sql'].get('select', 0):,}"})
    return out


def _code_line(code: dict[str, Any]) -> str:
    start, end = code.get("start", {}), code.get("end", {})
    text = (f"Code measured ({', '.join(MEASURED)}): last changed in commit "
            f"{start.get('commit', '?')} (HEAD {start.get('head', '?')})")
    if start.get("uncommitted"):
        text += f", plus uncommitted changes to {', '.join(start['uncommitted'])}"
    if end and (end.get("commit"), end.get("uncommitted")) != (start.get("commit"),
                                                              start.get("uncommitted")):
        text += (f"; **it changed during the run** (at the end: {end.get('commit')}, "
                 f"uncommitted: {', '.join(end.get('uncommitted', [])) or 'none'})")
    return text + "."


def _heap_lines(label: str, result: dict[str, Any], top: int = 10) -> list[str]:
    """The biggest allocation sites near the heap peak (runs with --tracemalloc)."""
    sites = result.get("heap_top") or []
    if not sites:
        return []
    lines = [f"Heap near its peak ({label}, tracemalloc): {sites[0]['mib']} MiB traced; "
             "biggest sites:", "", "| site | MiB | blocks |", "|---|---:|---:|"]
    lines += [f"| `{x['site']}` | {x['mib']} | {x['blocks']:,} |" for x in sites[1:top + 1]]
    return [*lines, ""]


def _mark(ok: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "info"}[ok]


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(data: dict[str, Any]) -> str:
    """The whole result as Markdown (``bench/results/latest.md``)."""
    m, cfg = data["machine"], data["config"]
    lines = [
        "# syncd sync benchmark", "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, {m['platform']}; "
        f"{m['date']}; load average at start {m['loadavg_at_start']}, at end "
        f"{m.get('loadavg_at_end')} (the machine is shared: other work ran alongside).",
        _code_line(data.get("code", {})),
        f"Run: N={cfg['n']:,} activities over U={cfg['owners']} owners, {cfg['latency_ms']} ms "
        f"added per request, {cfg['workers']} workers, {cfg['percent']} % per change phase, "
        f"{cfg['database']} store. Floor: same {cfg['workers']} calendars at a time; CalDAV "
        f"{cfg['caldav_concurrency']} writes in flight per calendar, Google batches of 50, "
        "Graph $batch of 20 in 4 chains.", "",
        "Wall and CPU in seconds; CPU is the measured process's own (syncd or floor); "
        "server CPU is the serving side (proxy + server) during syncd's phase. A 'settle' "
        "row is the next cycle, which reads back the phase's own writes.", "",
    ]
    for prov in data["providers"]:
        lines += [f"## {prov['provider']}", ""]
        if prov.get("error"):
            lines += [f"Not run: {prov['error']}", ""]
            continue
        s = prov["syncd"]
        lines += [
            "| phase | changes | syncd wall | floor wall | syncd/floor | syncd CPU | "
            "server CPU | syncd requests | floor requests |",
            "|---|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for row in prov["rows"]:
            p, f = row["syncd"], row["floor"]
            lines.append(
                f"| {row['phase']} | {p['changes']:,} | {p['wall_s']:.2f} | "
                f"{_num(f['wall_s'] if f else None)} | {_num(row['wall_ratio'])}x | "
                f"{p['cpu_s']:.2f} | {p['server_cpu_s']:.2f} | {requests_cell(p)} | "
                f"{requests_cell(f) if f else 'n/a'} |")
        floor_rss = prov["floor"]["peak_rss_mib"] if prov.get("floor") else None
        lines += ["", f"Peak RSS: syncd {s['peak_rss_mib']} MiB (after start-up "
                      f"{s['baseline_rss_mib']} MiB), floor {_num(floor_rss, 1)} MiB."
                      + (" tracemalloc was on: times are inflated." if s.get("tracemalloc")
                         else ""), ""]
        lines += _heap_lines(prov["provider"], s)
        cap = prov.get("capacity") or {}
        if cap:
            lines += [
                f"Owners per process at a {INTERVAL_S} s interval: idle "
                f"{cap['idle_owners']:,} (naive {cap['idle_naive_owners']:,}, CPU bound "
                f"{cap['idle_cpu_bound_owners']:,}); 1 % changing "
                f"{cap['one_percent_owners']:,} (naive {cap['one_percent_naive_owners']:,}, "
                f"CPU bound {cap['one_percent_cpu_bound_owners']:,}).", ""]
        lines += ["| target | result | value |", "|---|---|---|"]
        lines += [f"| {t['target']} | {_mark(t['ok'])} | {t['value']} |" for t in prov["targets"]]
        bad = [c for c in s["checks"] if not c["ok"]]
        lines += ["", "Correctness checks: " + (
            "all passed." if not bad else
            "; ".join(f"{c['phase']}: {c['check']} failed ({c['value']})" for c in bad)), ""]
        notes = [n for p in s["phases"] for n in p.get("notes", [])]
        if notes:
            lines += ["Cycle messages: " + "; ".join(sorted(set(notes))[:10]), ""]
    if data.get("sweep"):
        lines += ["## Memory and cycle cost against N", "",
                  "| provider | N | owners | latency ms | peak RSS MiB | after start-up MiB | "
                  "heap peak MiB | initial wall | initial CPU | settle wall | idle wall | "
                  "idle CPU | 1 % edit wall | 1 % edit CPU |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in data["sweep"]:
            if "error" in s:
                lines.append(f"| {s['provider']} | {s['n']:,} | {s['owners']} | "
                             f"{s.get('latency_ms', '')} | failed: {s['error']} "
                             "| | | | | | | | | |")
                continue
            ph = {p["name"]: p for p in s["phases"]}
            heap = max((p.get("heap_peak_mib") or 0 for p in s["phases"]), default=0)
            edit = ph.get("crm edits", {})
            lines.append(
                f"| {s['provider']} | {s['n']:,} | {s['owners']} | {s.get('latency_ms', '')} | "
                f"{s['peak_rss_mib']} | {s['baseline_rss_mib']} | {heap or 'off'} | "
                f"{ph['initial']['wall_s']:.1f} | {ph['initial']['cpu_s']:.1f} | "
                f"{ph['initial settle']['wall_s']:.1f} | {ph['idle']['wall_s']:.2f} | "
                f"{ph['idle']['cpu_s']:.2f} | {_num(edit.get('wall_s'))} | "
                f"{_num(edit.get('cpu_s'))} |")
        lines += [""]
        for row in data["sweep"]:
            lines += _heap_lines(f"{row['provider']} N={row['n']:,} U={row['owners']}", row)
        lines += ["| target | result | value |", "|---|---|---|"]
        lines += [f"| {t['target']} | {_mark(t['ok'])} | {t['value']} |"
                  for t in data.get("memory_targets", [])] or ["| (needs N=10,000 and "
                                                              "N=100,000) | n/a | |"]
        lines += [""]
    if data.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in data["notes"]] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Re-render a result file's Markdown, optionally adding sweep rows from other runs."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("json", type=Path, help="e.g. bench/results/latest.json")
    parser.add_argument("--add-sweep", type=Path, nargs="*", default=[],
                        help="result files whose sweep rows are added (their date and "
                             "code version are kept on each row)")
    parser.add_argument("--drop-failed-sweeps", action="store_true")
    parser.add_argument("--note", action="append", default=[], help="a line for Notes")
    args = parser.parse_args(argv)
    data = json.loads(args.json.read_text())
    if args.drop_failed_sweeps:
        data["sweep"] = [s for s in data.get("sweep", []) if "error" not in s]
    for other in args.add_sweep:
        extra = json.loads(other.read_text())
        for row in extra.get("sweep", []):
            row.setdefault("run", {"date": extra["machine"]["date"],
                                   "code": extra.get("code", {}).get("start")})
            data.setdefault("sweep", []).append(row)
    data["notes"] = data.get("notes", []) + args.note
    data["memory_targets"] = memory_targets(data.get("sweep", []))
    args.json.write_text(json.dumps(data, indent=1, default=str) + "\n")
    args.json.with_suffix(".md").write_text(markdown(data) + "\n")
    print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
