"""The deployment as data: roles, hosts, services, tasks bound to steps; secrets; fleets."""
