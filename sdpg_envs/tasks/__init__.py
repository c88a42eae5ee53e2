"""Task sources: procedural generators and loaders for local jsonl/parquet files or HF datasets."""

from sdpg_envs.tasks.sources import ListSource, ProceduralSource, TaskSource, data_dir, load_records, problem_rng

__all__ = ["ListSource", "ProceduralSource", "TaskSource", "data_dir", "load_records", "problem_rng"]
