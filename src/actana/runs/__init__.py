"""Runs: the queue, the worker that drives a run through the nine phases, and event ingest.

Event ingest turns what a sandbox prints (hostile bytes) into the run's tamper-evident audit
files: `lines` frames and cleans the bytes, `ingest` parses, vets and re-envelopes each line into
stream.jsonl and writes steps.json and result.json, `chain` verifies them.
"""
