"""The proctoring service from the client's side: protocol client, session, tokens, the link."""
