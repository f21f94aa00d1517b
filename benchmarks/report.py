"""Print the benchmark tables of docs/explanation/benchmarks.md (Markdown) from ``benchmarks/results/*.json``.

.venv/bin/python benchmarks/report.py
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _load_note(data: dict[str, Any]) -> str:
    machine = data.get("machine", {})
    load = machine.get("load_1min_during_runs", {})
    when = machine.get("when", "?")
    cpus = machine.get("cpus", "?")
    return f"{when}, {cpus} CPUs, 1-minute load {load.get('min', '?')} to {load.get('max', '?')} during the runs"


def build(data: dict[str, Any]) -> list[str]:
    summary = data["summary"]
    rows = [
        ("pip", "plain `pip install -r … --target python` + `zip -r` (Python 3.12, what users write)"),
        ("sam", "`sam build` + `zip -r` (SAM CLI, python3.12 on the host)"),
        ("ours", "ours, default"),
        ("ours-pip", "ours `--installer pip`"),
        ("ours-uv", "ours `--installer uv`"),
        ("uv", "bare `uv pip install --target` + `zip -r` (the practical limit)"),
    ]
    pip = summary["pip"]["median_s"]
    out = [f"Caches {data['caches']}; median of {data['rounds']}; {_load_note(data)}.", ""]
    out += ["| build | time | vs plain pip |", "|---|---|---|"]
    for key, label in rows:
        if key in summary:
            installer = summary[key]["facts"].get("installer")
            shown = f"{label} ({installer})" if key == "ours" and installer else label
            out.append(f"| {shown} | {summary[key]['median_s']:.1f} s | {summary[key]['median_s'] / pip:.2f} |")
    ratios = data["ratios"]
    out += [
        "",
        f"ours / plain pip = {ratios.get('ours / pip')}, ours / bare uv = {ratios.get('ours / uv')}, "
        f"ours `--installer uv` / bare uv = {ratios.get('ours-uv / uv')}",
    ]
    return out


def zips(data: dict[str, Any]) -> list[str]:
    out = [f"Median of {data['rounds']}; {_load_note(data)}.", ""]
    out += [
        "| layer | unzipped | serial | parallel | parallel, 1 thread | parallel / serial | same bytes | peak memory "
        "(serial / parallel) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, layer in data["layers"].items():
        s = layer["summary"]
        peak = layer["peak_mib"]
        out.append(
            f"| {name} | {layer['unzipped_bytes'] / 2**20:.0f} MiB | {s['serial']['median_s']:.2f} s | "
            f"{s['parallel']['median_s']:.2f} s | {s['parallel-1']['median_s']:.2f} s | "
            f"**{layer['ratios']['parallel / serial']}** | {'yes' if layer['identical_bytes'] else 'NO'} | "
            f"{peak['serial']:.0f} / {peak['parallel']:.0f} MiB |"
        )
    return out


def targets(data: dict[str, Any]) -> list[str]:
    s = data["summary"]
    out = [f"Cold, median of {data['rounds']}; {_load_note(data)}.", ""]
    out += ["| synth | time | vs one target |", "|---|---|---|"]
    labels = {
        "one": "`PipLambdaLayer`, python3.12/x86_64",
        "four": "`PipLambdaLayers`, 4 targets (builds together)",
        "four-one-by-one": "4 `PipLambdaLayer`s (built one after the other)",
    }
    one = s["one"]["median_s"]
    for key, label in labels.items():
        out.append(f"| {label} | {s[key]['median_s']:.1f} s | {s[key]['median_s'] / one:.2f} |")
    return out


def container(data: dict[str, Any]) -> list[str]:
    s = data["summary"]
    out = [f"Median of {data['rounds']}; {_load_note(data)}.", ""]
    out += ["| case | time | vs PythonLayerVersion |", "|---|---|---|"]
    labels = {
        "plv": "CDK `PythonLayerVersion`, same image (no cache)",
        "ours-cold": "CDK `PipLambdaLayer(bundling='docker')`, first build (empty caches)",
        "ours-warm": "the same, download cache warm (the container runs)",
        "ours-layer-cache": "the same, layer cache warm (fresh `cdk.out`, as in CI)",
        "builder-cold": "`PipBasedLambdaLayerContainerBuilder`, empty cache",
        "builder-warm": "`PipBasedLambdaLayerContainerBuilder`, warm cache",
        "builder-pip-cold": "the same with `installer='pip'` (pip in the image), empty cache",
        "builder-pip-warm": "the same with `installer='pip'`, warm cache",
        "local": "local build (no Docker)",
    }
    plv = s["plv"]["median_s"]
    for key, label in labels.items():
        if key in s:
            out.append(f"| {label} | {s[key]['median_s']:.2f} s | {s[key]['median_s'] / plv:.2f} |")
    return out


def scale(data: dict[str, Any]) -> list[str]:
    out = [f"Median of {data['rounds']}, caches warm; {_load_note(data)}.", ""]
    out += [
        "| layer | distributions | unzipped | zipped | build | of which zip | peak memory, build process | "
        "peak memory, installer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in data["table"]:
        out.append(
            f"| {row['set']} | {row['distributions']} | {row['unzipped_mib']} MiB | {row['zipped_mib']} MiB | "
            f"{row['median_s']:.1f} s | {row['zip_median_s']:.1f} s | {row['engine_peak_mib_max']:.0f} MiB | "
            f"{row['installer_peak_mib_max']:.0f} MiB |"
        )
    return out


def synth(data: dict[str, Any]) -> list[str]:
    machine = data["machine"]
    start, end = machine.get("load_average_at_start", ["?"]), machine.get("load_average_at_end", ["?"])
    loads = f"{start[0]} at the start, {end[0]} at the end"
    warm, fresh, cold = data["warm"], data["fresh_cdk_out_cache_warm"], data["cold"]
    out = [f"{machine.get('when', '?')}, {machine.get('cpus', '?')} CPUs, 1-minute load {loads}.", ""]
    out += ["| case | result | goal |", "|---|---|---|"]
    out.append(
        f"| warm `cdk synth`, nothing changed: ours vs the same app with a plain prebuilt `Code.from_asset` layer "
        f"({warm['rounds']} rounds) | {warm['ours_median']:.2f} s vs {warm['plain_median']:.2f} s, ratio "
        f"**{warm['ratio']:.2f}** | ≤ {warm['goal_ratio']} |"
    )
    out.append(
        f"| fresh `cdk.out`, layer cache warm: build work | **{fresh['build_work_seconds_median']:.3f} s** (synth "
        f"{fresh['synth_seconds_median']:.1f} s) | < {fresh['goal_build_work_seconds']:.0f} s |"
    )
    out.append(
        f"| cold build (pip's cache off) | synth {cold['synth_seconds']:.1f} s, of which layer build "
        f"{cold['build_seconds']:.1f} s | |"
    )
    return out


_SLIM_VARIANTS = {
    "none": "without slim",
    "ours": "ours (`slim=True`)",
    "spr": "serverless-python-requirements' `slim: true` rules",
}


def slim(data: dict[str, Any]) -> list[str]:
    mib = 1024 * 1024
    out = [f"Python 3.12; {data['machine'].get('when', '?')}.", ""]
    out += [
        "| set | arch | layer | unzipped | zipped | unzipped saved | imports failing | metadata failing |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, by_arch in data["sets"].items():
        for arch, result in by_arch.items():
            none = result["variants"]["none"]["unzipped_bytes"]
            for key, label in _SLIM_VARIANTS.items():
                facts = result["variants"][key]
                saved = 1 - facts["unzipped_bytes"] / none
                if "import_failures" in facts:
                    imports = f"{len(facts['import_failures'])} of {result['modules_checked']}"
                    metadata = f"{len(facts['metadata_failures'])} of {len(result['distributions'])}"
                else:
                    imports = metadata = "not run"
                out.append(
                    f"| {name} | {arch} | {label} | {facts['unzipped_bytes'] / mib:.1f} MiB | "
                    f"{facts['zipped_bytes'] / mib:.1f} MiB | {saved:.1%} | {imports} | {metadata} |"
                )
    return out


_REBUILD_LABELS = {
    "a": {
        "rebuild": "ours, one pin changed, caches warm",
        "cold": "ours, the same set, caches empty (everything downloaded)",
        "bare": "bare `uv pip install --target` (cache warm) + `zip -r`, the same set",
    },
    "b": {
        "ours": "ours, caches warm (the same bytes as before: the import's outcome kept)",
        "ours-new-bytes": "ours, caches warm, no kept import outcome (the import runs, byte-code kept)",
        "ours-first": "ours, the first build of these bytes (uv's cache warm)",
        "bare": "bare `uv pip install --target` (cache warm) + `zip -r`",
    },
    "d": {
        "uv-warm": "`uv pip install --target`, cache warm",
        "uv-cold": "`uv pip install --target`, cache empty",
        "pip-warm": "`pip install --target` (Python 3.12), cache warm",
    },
    "c": {
        "four": "`PipLambdaLayers`, 4 targets, one pin changed, caches warm",
        "one": "`PipLambdaLayer`, python3.12/x86_64, one pin changed, caches warm",
        "four-cold": "`PipLambdaLayers`, 4 targets, caches empty",
    },
}


def _peak(facts: dict[str, Any]) -> str:
    if "engine_peak_mib" in facts:
        return f"{facts['engine_peak_mib']:.0f} / {facts['installer_peak_mib']:.0f} MiB"
    return f"{facts['peak_mib']:.0f} MiB" if "peak_mib" in facts else ""


def rebuild(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for part, result in data["parts"].items():
        summary = result["summary"]
        out += [f"Part {part}: median of {data['rounds']}; {_load_note(result)}.", ""]
        out += ["| build | time | steps (median run) | peak memory (build / installer) |", "|---|---|---|---|"]
        for key, label in _REBUILD_LABELS[part].items():
            if key not in summary:
                continue
            facts = summary[key]["facts"]
            steps = ", ".join(f"{k} {v:.2f}" for k, v in facts.get("steps_s", {}).items() if v >= 0.05)
            out.append(f"| {label} | {summary[key]['median_s']:.2f} s | {steps} | {_peak(facts)} |")
        ratios = ", ".join(f"{k} = **{v}**" for k, v in result["ratios"].items())
        out += ["", ratios, ""] if ratios else [""]
    return out


SECTIONS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "bench_build": build,
    "bench_zip": zips,
    "bench_targets": targets,
    "bench_container": container,
    "bench_scale": scale,
    "bench_synth": synth,
    "bench_slim": slim,
    "bench_rebuild": rebuild,
}


def main() -> int:
    for name, render in SECTIONS.items():
        data = _load(name)
        print(f"### {name}\n")
        print("\n".join(render(data)) if data else f"(no {name}.json yet)")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
