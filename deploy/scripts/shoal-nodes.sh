# Shared by start-shoal.sh and stop-shoal.sh: reading host lists and running commands on hosts.

# The non-empty, non-comment lines of host file $1, or `localhost` if it does not exist.
nodes() {
    if [ -f "$1" ]; then
        grep -v '^[[:space:]]*\(#\|$\)' "$1" || true
    else
        echo localhost
    fi
}

# Run shell command $2 on host $1: directly for this host, through ssh for others.
on_host() {
    case "$1" in
        localhost|127.0.0.1|"$(hostname)") bash -c "$2" ;;
        *) ssh -o BatchMode=yes "$1" "$2" ;;
    esac
}
