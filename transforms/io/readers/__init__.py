"""One reader per shard format (`warc`, `jsonl`, `parquet`, `hf_dataset`) and what they share
(`common`); `transforms/io/read.py` dispatches a shard to its reader."""
