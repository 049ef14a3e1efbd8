"""screening: the service that runs a city's pooled PCR screening round."""
