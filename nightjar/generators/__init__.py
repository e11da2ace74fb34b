"""Demo data generators: simulated populations whose true risk is known, so model quality can
be compared with the best achievable."""
