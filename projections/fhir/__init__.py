"""FHIR R4 out (docs/fhir.md): a person's journey as UK Core-style resources.

``resources`` maps one person's folded events to FHIR resources (built and validated by
``fhir.resources``' R4B models), ``bundle`` puts them in a ``collection`` Bundle (and
reads one back), ``export`` writes everyone's resources as Bulk Data NDJSON files,
pseudonymised. Like every projection, nothing here reads a projection table: the same
folds run over the ledger's events, so a Bundle "as of T, as known at K" is exact.
"""
