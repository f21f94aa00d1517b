"""Checking a layer zip: the zip reader, the inventory, ELF checks, the smoke import, the report."""
