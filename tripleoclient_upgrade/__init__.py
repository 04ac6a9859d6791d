"""OpenStackClient plugin: ``openstack overcloud upgrade ...`` over composable_upgrades."""
