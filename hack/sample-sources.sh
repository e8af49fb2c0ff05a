#!/usr/bin/env bash
# hack/sample-sources.sh ROOT DATA makes what config/samples' Overlays fetch,
# for make run and the packages test: ROOT is a node's /var/lib/left4me as
# the host sees it (the archives go to ROOT/archives, which the samples name
# as file:///var/lib/left4me/archives/...), DATA a directory of the caller's
# (a clone of the git sample to edit and push, the Workshop catalog for the
# Steam Web API double: DATA/steam/catalog.json).
set -euo pipefail
root=$1 data=$2
mkdir -p "$root/archives" "$data"
# The sourcemod sample: a release-like archive (addons/, cfg/), into left4dead2.
sm="$data/sourcemod-sample"
rm -rf "$sm" && mkdir -p "$sm/addons/sourcemod/plugins" "$sm/addons/metamod" "$sm/cfg/sourcemod"
printf '"Plugin"\n{\n\t"file"\t"../left4dead2/addons/sourcemod/bin/sourcemod_mm"\n}\n' > "$sm/addons/metamod/sourcemod.vdf"
printf 'stand-in for a compiled plugin\n' > "$sm/addons/sourcemod/plugins/basecommands.smx"
printf 'sm_show_activity 13\n' > "$sm/cfg/sourcemod/sourcemod.cfg"
printf 'sm_show_activity "0"\n' > "$sm/cfg/server.cfg"
tar -czf "$root/archives/sourcemod-sample.tar.gz" -C "$sm" addons cfg
# The competitive sample: a git repository (bare, as a server would hold it)
# and a clone of it in .data to edit and push.
rm -rf "$root/archives/competitive.git" "$data/competitive"
git init -q --bare -b main "$root/archives/competitive.git"
git init -q -b main "$data/competitive"
printf 'hostname "left4me competitive (from git)"\nsv_alltalk 0\n' > "$data/competitive/server.cfg"
git -C "$data/competitive" add server.cfg
git -C "$data/competitive" config user.name left4me
git -C "$data/competitive" config user.email left4me@localhost
git -C "$data/competitive" commit -qm "competitive configs"
git -C "$data/competitive" push -q "$root/archives/competitive.git" main
git -C "$data/competitive" remote add origin "$root/archives/competitive.git"
chmod -R a+rX "$root/archives"   # the fetcher account reads them
# The Workshop: the catalog the Steam Web API double serves, the coop-maps
# sample's items and collection.
mkdir -p "$data/steam"
cat > "$data/steam/catalog.json" <<'JSON'
{"items": [
  {"id": "3001", "title": "Dark Carnival Remix", "timeUpdated": 1735689600, "size": 70000},
  {"id": "3002", "title": "Urban Flight", "timeUpdated": 1735689600, "size": 50000},
  {"id": "3003", "title": "Diescraper Redux", "timeUpdated": 1735689600, "size": 90000}],
 "collections": [{"id": "121115793", "title": "left4me sample campaigns", "children": [{"id": "3002"}, {"id": "3003"}]}]}
JSON
