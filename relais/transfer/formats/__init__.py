"""Destination formats: one module each (render a TransferPayload, validate it); listed in relais.transfer.registry."""
