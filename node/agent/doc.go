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
package agent
