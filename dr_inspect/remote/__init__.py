"""Remote hosts over ssh: capture agents on them, and their host state for doctor.

    ssh.py        SshHost, the ssh argv (BatchMode, the user's keys and config), multiplexing
    inventory.py  the inventory file (TOML) and the --host / --iface options
    probe.py      before capturing: tcpdump and interfaces there, the host's clock offset
    agent.py      one remote tcpdump whose pcap stream comes back over ssh
    capture.py    remote_capture_for: every point into one capture set with its manifest
"""
