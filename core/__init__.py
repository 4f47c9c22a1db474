"""The small shared core every room may use: user errors, a generic registry, the storage
``Location`` with atomic writes, and the result keys trainables report. Imports none of ours."""
