"""Whole jobs on one machine: ``job`` (identity, store, ingest, run, output), ``estimate``
(the priced plan), ``tune`` (measured pack sizes), ``vote`` (several answers per record)
and ``quality`` (how often two answers agree, and the pack size that implies)."""
