package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/understudy-nvr/understudy/engine/api"
	"github.com/understudy-nvr/understudy/engine/cluster"
	"github.com/understudy-nvr/understudy/placement"
)

// Node settings that belong to the cluster: an operator sets them through
// any node (UpdateNode), the node they concern keeps them in its data
// directory, so a restart keeps them over the config file's weight, and
// announces them in its membership metadata.

// nodeSettingsFile is the file, in the data directory, of the settings
// UpdateNode made.
const nodeSettingsFile = "node-settings.json"

type nodeSettings struct {
	State  string `json:"state,omitempty"`  // active or draining
	Weight int    `json:"weight,omitempty"` // capacity weight
}

// loadNodeSettings reads the settings file of dir; none is no settings.
func loadNodeSettings(dir string) (nodeSettings, error) {
	path := filepath.Join(dir, nodeSettingsFile)
	var ns nodeSettings
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ns, nil
	}
	if err != nil {
		return ns, err
	}
	if err := json.Unmarshal(b, &ns); err != nil {
		return ns, fmt.Errorf("%s: %v (remove the file to use the config's settings)", path, err)
	}
	if ns.State != "" && ns.State != cluster.StateActive && ns.State != cluster.StateDraining {
		return ns, fmt.Errorf("%s: state %q: must be %q or %q (remove the file to use the config's settings)", path, ns.State, cluster.StateActive, cluster.StateDraining)
	}
	if ns.Weight < 0 || ns.Weight > placement.MaxNodeWeight {
		return ns, fmt.Errorf("%s: weight %d: must be between 1 and %d (remove the file to use the config's settings)", path, ns.Weight, placement.MaxNodeWeight)
	}
	return ns, nil
}

// save writes the settings file of dir: a new file fsynced and renamed
// over the old one, so a crash leaves one or the other.
func (ns nodeSettings) save(dir string) error {
	b, err := json.MarshalIndent(ns, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, nodeSettingsFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save node settings: %w", err)
	}
	return nil
}

// ErrNodeLive is returned by ForgetNode for a node that is a live member.
var ErrNodeLive = api.ErrNodeLive

// ForgetNode removes a node gone for good from the known-node registry:
// placement stops counting it as failed, and its copies are placed as if
// it never existed (which moves the homes and copies the placement without
// it gives). A live node cannot be forgotten: drain it and stop it first.
func (n *Node) ForgetNode(id string) error {
	if id == n.cfg.ID {
		return fmt.Errorf("node %q: %w: it is this node", id, ErrNodeLive)
	}
	if n.cl != nil {
		for _, m := range n.cl.Members() {
			if m.ID == id && m.Alive {
				return fmt.Errorf("node %q: %w: stop it before forgetting it (a live node registers itself again)", id, ErrNodeLive)
			}
		}
	}
	if err := n.catalog.ForgetNode(id); err != nil {
		return err
	}
	// What it held is gone with it: reads stop asking for it.
	for _, h := range n.catalog.HoldingsOf(id) {
		if err := n.catalog.DropHolding(h.Stream, id); err != nil {
			n.log.Warn("forget node: cannot drop a holding", "node", id, "stream", h.Stream, "err", err)
		}
	}
	n.poke()
	return nil
}
