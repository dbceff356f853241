"""The owner UI: sign-in, the sites list, a site's dashboard, its settings, shared links
and invitations, API keys; their consumers and socket routes. No models of its own: it
reads the core (`zenovay`) and reuses the public widgets' socket machinery (`widgets`)."""
