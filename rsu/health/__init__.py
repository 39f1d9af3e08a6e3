"""Health of what the messages depend on: the system clock (:mod:`rsu.health.clock`) and the GNSS
receiver (:mod:`rsu.health.gnss`), their configuration (:mod:`rsu.health.config`) and the daemon's
monitor that polls them (:mod:`rsu.health.monitor`)."""
