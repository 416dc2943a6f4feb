# Sourced by the scripts that build or run the image: buildah and podman keep their images,
# containers and settings in target/containers (not in /var/lib/containers), and run containers
# with runc (crun refuses some kernels' hybrid cgroups) without default ulimits (a container
# inside a sandbox may not raise its limits).
CONTAINERS_HOME="${CONTAINERS_HOME:-$PWD/target/containers}"
mkdir -p "$CONTAINERS_HOME/storage" "$CONTAINERS_HOME/run"
cat > "$CONTAINERS_HOME/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$CONTAINERS_HOME/storage"
runroot = "$CONTAINERS_HOME/run"
CONF
cat > "$CONTAINERS_HOME/containers.conf" <<CONF
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$CONTAINERS_HOME/run/events.log"
CONF
export CONTAINERS_STORAGE_CONF="$CONTAINERS_HOME/storage.conf"
export CONTAINERS_CONF="$CONTAINERS_HOME/containers.conf"
