"""`sdpg plot`: PNG training curves for several runs, with derived pass/compile-error rates and wall time."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sdpg_train.cli import main
from sdpg_train.evaluation.compare import read_metrics_jsonl
from sdpg_train.evaluation.plotting import STEP_KEYS, TIME_KEYS, plot_runs, series, smooth


def _run(path: Path, rate: float, with_time: bool = True) -> Path:
    path.mkdir(parents=True)
    rows = []
    for step in range(1, 21):
        row = {"step": step, "reward": 1 - math.exp(-rate * step), "distill/kl": 0.5 * math.exp(-step / 7),
               "entropy": 2.0 - step / 20, "status/passed": step, "status/compile_error": 20 - step,
               "status/wrong_answer": 4}
        row["perf/step_s" if with_time else "train/grad_norm"] = 1.5
        rows.append(row)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_plot_cli_writes_png_for_two_runs(tmp_path, capsys):
    a, b = _run(tmp_path / "sdpg", 0.2), _run(tmp_path / "grpo", 0.1)
    out = tmp_path / "figs" / "curves.png"
    assert main(["plot", str(a), str(b), "--out", str(out)]) == 0
    assert "panels: reward, pass rate, compile-error rate, KL(student ‖ teacher), entropy" in capsys.readouterr().out
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    import matplotlib.image as mpimg

    img = mpimg.imread(out)  # (H, W, C): two columns (step and wall time) of five panels
    assert img.shape[1] > img.shape[0] * 0.6 and img.std() > 0.05
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # written atomically, no temp files


def test_derived_rates_and_wall_time(tmp_path):
    rows = read_metrics_jsonl(_run(tmp_path / "r", 0.2) / "metrics.jsonl")
    assert rows[0]["pass_rate"] == pytest.approx(1 / 24) and rows[0]["compile_error_rate"] == pytest.approx(19 / 24)
    xs, ys = series(rows, ("compile_error_rate",), TIME_KEYS)
    assert xs[:3] == [1.5, 3.0, 4.5] and ys[-1] == pytest.approx(0.0)
    xs, _ = series(rows, ("reward",), STEP_KEYS)
    assert xs == [float(s) for s in range(1, 21)]
    assert series(rows, ("missing",), STEP_KEYS) == ([], [])


def test_plot_without_wall_time_and_with_extra_keys(tmp_path):
    run = _run(tmp_path / "r", 0.2, with_time=False)
    drawn = plot_runs([run], tmp_path / "one.png", extra_keys=["train/grad_norm"], labels=["mine"], smoothing=3)
    assert drawn[-1] == "train/grad_norm" and (tmp_path / "one.png").stat().st_size > 5_000


def test_plot_errors_are_clear(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nope"), "--out", str(tmp_path / "x.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["plot", str(empty), "--out", str(tmp_path / "x.png")]) == 2
    assert "has no metrics.jsonl" in capsys.readouterr().err
    (empty / "metrics.jsonl").write_text(json.dumps({"step": 1, "perf/peak_mem_mb": 3.0}) + "\n")
    assert main(["plot", str(empty), "--out", str(tmp_path / "x.png")]) == 2
    assert "no run logged any of" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_smooth_is_a_trailing_mean():
    assert smooth([1.0, 2.0, 3.0, 4.0], 2) == [1.0, 1.5, 2.5, 3.5]
    assert smooth([1.0, 5.0], 1) == [1.0, 5.0]
