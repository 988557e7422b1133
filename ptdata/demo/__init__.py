"""The bundled demo: a seeded generator of a realistic landing zone, its config and a small eval set."""
