"""Trading: risk clamps, contingent orders (OCO/OTO/bracket), paper exchange, decision engine."""
