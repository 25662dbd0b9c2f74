"""Bytewax dataflows: the wiring of stages, Kafka input and recovery.

The only package that imports Bytewax. ``dedupe`` and ``account`` here are pure
Python too; ``flow`` and ``runner`` are the engine adapters.
"""
