"""Who may do what: API keys with scopes (console users and roles come with the console)."""
