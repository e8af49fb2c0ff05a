// Package agent is l4m-node's control loop. It realizes the Instances bound
// to its node as systemd units over overlayfs, and reports back.
//
// Lifecycle of one Instance on a node:
//
//	watch event / resync / unit signal
//	        │
//	        ▼
//	  finalizer added ──► Blueprint and Overlays read ──► overlay refs resolved
//	        │                                   (refused: OverlaysReady=False, no mount, no unit)
//	        │   path: a directory below overlays/, checked with openat2
//	        │   files (later archive, git, workshop): a Materializer writes a staging tree
//	        │     once per content ──► node/store verifies, seals, names it ──► overlays/.store/<entry>/tree
//	        │     (not there: a running game keeps its stack, nothing new starts)
//	        ▼
//	  account (own uid/gid) ──► dirs (safefs: no symlink followed) ──► generated layer
//	  (server.cfg, overlay cfgs; root's, immutable) ──► .mount + .service written
//	        ▼
//	  mount started ──► layers verified ──► game unit started (restarted when its unit changed)
//	        ▼
//	  status: phase, UnitActive, Ready (A2S), PID, restarts
//
//	deletion: stop game (SIGINT) ──► stop mount ──► remove units and dirs ──► drop finalizer
//
// Every step compares what is with what should be, so running it twice, or
// after the agent restarts, changes nothing: running games are adopted, not
// restarted.
//
// The store keeps what a game's spec.json or mount unit names, and each
// used Overlay's current and previous entry; the rest is collected
// (store.GC) once every Instance has been reconciled since the start.
// status.overlays in the Node's status says, per fetched Overlay an Instance
// here stacks, whether its current digest is Ready or Failed and which
// digests the store holds.
package agent
