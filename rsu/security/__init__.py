"""Security layer: ETSI TS 103 097 / IEEE 1609.2 signed data, certificates, SSP checks.

Layer contract: takes facilities PDU bytes (UPER) and gives secured 1609.2 data
(COER bytes of EtsiTs103097Data-Signed), and back.
"""
