"""Writing a plan as Ansible: step playbooks, task files and the inventory."""
