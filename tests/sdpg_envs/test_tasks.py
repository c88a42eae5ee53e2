"""Task sources: procedural arithmetic, local file loaders, shared-data loaders."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sdpg_envs.tasks.arith import ArithConfig, arith_problem, arith_source, evaluate
from sdpg_envs.tasks.gsm8k import gsm8k_problem, gsm8k_source
from sdpg_envs.tasks.math_data import last_boxed, math_source
from sdpg_envs.tasks.sources import ListSource, ProceduralSource, data_dir, load_records
from sdpg_envs.types import Problem


@pytest.mark.parametrize(
    "cfg",
    [ArithConfig(digits=1, num_ops=1, operators="+"), ArithConfig(digits=3, num_ops=4, operators="+-*"),
     ArithConfig(digits=2, num_ops=3, operators="+-*", word_problems=True)],
)
def test_arith_problems_are_pure_and_correct(cfg):
    problems = [arith_problem(7, i, cfg) for i in range(50)]
    assert problems == [arith_problem(7, i, cfg) for i in range(50)]
    assert problems != [arith_problem(8, i, cfg) for i in range(50)]
    for p in problems:
        if cfg.word_problems:
            lines = p.solution.splitlines()
            assert len(lines) == cfg.num_ops and p.prompt.endswith("have now?")
            for line in lines:  # every worked step is arithmetic that checks out, ending at the answer
                lhs, rhs = line.split(" = ")
                assert evaluate(lhs) == int(rhs) >= 0
            assert lines[-1].endswith(f"= {p.answer}")
        else:
            expr = p.metadata["expression"]
            assert evaluate(expr) == int(p.answer) and p.metadata["terse"] == f"{expr}=?"
            assert sum(expr.count(op) for op in "+*") + expr[1:].count("-") == cfg.num_ops
            assert all(len(t) <= cfg.digits for t in expr.replace("*", "+").replace("-", "+").split("+"))


def test_arith_easy_setting_is_small_and_splits_differ():
    easy = ArithConfig(digits=1, num_ops=1, operators="+")
    train, test = arith_source(easy, split="train"), arith_source(easy, split="test")
    assert {p.metadata["terse"] for p in (train[i] for i in range(300))} <= {f"{a}+{b}=?" for a in range(10)
                                                                             for b in range(10)}
    assert [train[i].prompt for i in range(20)] != [test[i].prompt for i in range(20)]
    assert train[5] == arith_source(easy, split="train")[5]


def test_arith_rejects_bad_knobs():
    for bad in ({"digits": 0}, {"num_ops": 0}, {"operators": "/"}, {"operators": ""}, {"min_digits": 3}):
        with pytest.raises(ValueError):
            ArithConfig(**bad)
    with pytest.raises(ValueError, match="unsupported"):
        evaluate("2**3")


def test_list_and_procedural_sources_validate():
    src = ListSource([Problem("a", "q", "1")])
    with pytest.raises(IndexError, match="out of range"):
        src[1]
    with pytest.raises(TypeError, match="int"):
        src["0"]
    with pytest.raises(ValueError, match="no problems"):
        ListSource([])
    with pytest.raises(TypeError, match="Problem"):
        ListSource([{"prompt": "q"}])
    proc = ProceduralSource(lambda s, i: Problem(f"{s}-{i}", "q", str(i)), seed=3, size=5)
    assert len(proc) == 5 and proc[4].id == "3-4"
    with pytest.raises(IndexError):
        proc[5]
    with pytest.raises(TypeError, match="expected Problem"):
        ProceduralSource(lambda s, i: "oops")[0]


def test_load_records_reads_jsonl_json_gz_parquet(tmp_path):
    rows = [{"question": "1+1?", "answer": "#### 2"}, {"question": "2+2?", "answer": "#### 4"}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "a.json").write_text(json.dumps(rows))
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    for name in ("a.jsonl", "a.json", "a.jsonl.gz", "a.parquet"):
        assert load_records(tmp_path / name) == rows, name
    (tmp_path / "bad.jsonl").write_text('{"ok": 1}\nnot json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load_records(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError, match="no data file"):
        load_records(tmp_path / "missing.jsonl")


def test_load_records_offline_hub_name_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="offline"):
        load_records("someorg/some-dataset")


def test_data_dir_honours_env_var(monkeypatch, tmp_path, shared_data_dir):
    assert data_dir() == shared_data_dir
    monkeypatch.setenv("SDPG_SHARED_DIR", str(tmp_path))
    assert data_dir() == tmp_path.resolve() / "data"


def test_gsm8k_loader_on_shared_data(shared_data_dir):
    src = gsm8k_source(split="test", n=20)
    assert len(src) == 20 and src[0].id == "gsm8k-test-0"
    for p in src.problems:
        assert p.answer.lstrip("-").isdigit() and "<<" not in p.solution and "####" not in p.solution
    full = gsm8k_problem({"question": "q", "answer": "a <<2*500=1000>>1000\n#### 1,000"}, 0, "x")
    assert (full.answer, full.solution) == ("1000", "a 1000")
    with pytest.raises(ValueError, match="####"):
        gsm8k_problem({"question": "q", "answer": "42"}, 3, "x")


def test_math_loaders_on_shared_data(shared_data_dir):
    m500 = math_source("math500", n=30)
    assert len(m500) == 30 and all(p.answer and p.metadata["level"] in range(1, 6) for p in m500.problems)
    assert all(last_boxed(p.solution) == p.answer for p in m500.problems)
    hard = math_source("math", levels=[5], n=10)
    assert {p.metadata["level"] for p in hard.problems} == {5} and hard[0].id.startswith("math-test-")
    with pytest.raises(ValueError, match="subset"):
        math_source("nope")


def test_last_boxed_handles_nesting():
    assert last_boxed(r"so \boxed{1} then \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert last_boxed(r"\fbox{x^{2}}") == "x^{2}" and last_boxed("none") is None and last_boxed(r"\boxed{open") is None
