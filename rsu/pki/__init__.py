"""TS 102 941 PKI client (sans-I/O cores): ECIES, enrolment, authorization, trust lists.

Separate from :mod:`rsu.security.pki`, the local *test* PKI behind ``rsu pki init``.
Certificates, HashedId8 and ECDSA come from :mod:`rsu.security`; this package adds
the TS 102 941 messages (``asn1/pki``), their encryption and the trust-list logic.
"""
