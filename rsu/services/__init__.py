"""Facilities layer: the TS 103 301 service entities (TLM, RLT, IVI, TLC, GPC) and the dissemination scheduler.

Sans-I/O: service entities take application requests, received PDUs and a clock,
and return PDUs to send with their dissemination parameters.
"""
