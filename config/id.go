package config

// ValidID reports whether s is an id as the tenants file has them (orgs,
// keys, agents, publishable keys): [a-z0-9][a-z0-9-]{0,62}.
func ValidID(s string) bool { return idPattern.MatchString(s) }
