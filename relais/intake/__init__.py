"""The one road a screening takes into Relais, whatever brought it (web form, API single or batch, CSV row)."""
