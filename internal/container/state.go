package container

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The parsers here take the bytes of one state file and run anywhere, so
// they are fuzzed; Namer finds and reads the files.

// The Kubernetes labels the kubelet gives every container. Docker (through
// dockershim or cri-dockerd) keeps them as container labels; CRI-O and
// others write them as OCI annotations.
const (
	k8sPodName      = "io.kubernetes.pod.name"
	k8sPodNamespace = "io.kubernetes.pod.namespace"
	k8sPodUID       = "io.kubernetes.pod.uid"
	k8sContainer    = "io.kubernetes.container.name"
)

// The annotations containerd's CRI plugin writes into each container's
// OCI spec (pkg/cri/annotations in containerd).
const (
	criContainerName   = "io.kubernetes.cri.container-name"
	criSandboxName     = "io.kubernetes.cri.sandbox-name"
	criSandboxNS       = "io.kubernetes.cri.sandbox-namespace"
	criSandboxUID      = "io.kubernetes.cri.sandbox-uid"
	crioLabels         = "io.kubernetes.cri-o.Labels"
	crioContainerName  = "io.kubernetes.cri-o.ContainerName"
	maxCRIOLabelsBytes = 64 << 10
)

// parseDockerConfig reads docker's config.v2.json: the container's name
// ("/web-1") and, for a Kubernetes container, the kubelet's labels.
func parseDockerConfig(b []byte) (Info, error) {
	var c struct {
		ID     string
		Name   string
		Config struct {
			Labels map[string]string
		}
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Info{}, fmt.Errorf("docker config.v2.json: %w", err)
	}
	i := Info{Runtime: Docker, ID: c.ID, Name: strings.TrimPrefix(c.Name, "/")}
	kubeLabels(&i, c.Config.Labels)
	i.clean()
	return i, nil
}

// parseOCIConfig reads the annotations of an OCI runtime spec
// (config.json in a bundle): containerd's CRI annotations, the kubelet's
// labels that CRI-O copies there, and CRI-O's own record of them.
func parseOCIConfig(b []byte) (Info, error) {
	var c struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Info{}, fmt.Errorf("oci config.json: %w", err)
	}
	a := c.Annotations
	var i Info
	i.Pod = a[criSandboxName]
	i.Namespace = a[criSandboxNS]
	i.Container = a[criContainerName]
	i.PodUID = a[criSandboxUID]
	kubeLabels(&i, a)
	if s := a[crioLabels]; s != "" && len(s) <= maxCRIOLabelsBytes && (i.Pod == "" || i.Namespace == "" || i.Container == "") {
		var labels map[string]string
		if json.Unmarshal([]byte(s), &labels) == nil {
			kubeLabels(&i, labels)
		}
	}
	if i.Pod == "" {
		// CRI-O's k8s_<container>_<pod>_<namespace>_<uid>_<attempt>,
		// when nothing better is there.
		i.Name = a[crioContainerName]
	}
	i.clean()
	return i, nil
}

// kubeLabels fills the Kubernetes fields still empty from the kubelet's
// labels.
func kubeLabels(i *Info, l map[string]string) {
	fill(&i.Pod, l[k8sPodName])
	fill(&i.Namespace, l[k8sPodNamespace])
	fill(&i.Container, l[k8sContainer])
	fill(&i.PodUID, l[k8sPodUID])
}

func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// parseStorageContainers reads containers-storage's containers.json (and
// volatile-containers.json), the list podman and CRI-O keep of the
// containers they made: id → first name.
func parseStorageContainers(b []byte) (map[string]string, error) {
	var list []struct {
		ID    string   `json:"id"`
		Names []string `json:"names"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("containers.json: %w", err)
	}
	m := make(map[string]string, len(list))
	for _, c := range list {
		if c.ID == "" || len(c.Names) == 0 {
			continue
		}
		if n := cleanName(c.Names[0]); n != "" {
			m[c.ID] = n
		}
	}
	return m, nil
}

// parseDockerDaemonJSON returns docker's data-root from
// /etc/docker/daemon.json, or "" when it is not set.
func parseDockerDaemonJSON(b []byte) string {
	var c struct {
		DataRoot string `json:"data-root"`
		Graph    string `json:"graph"` // the name before Docker 17.05
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	if c.DataRoot != "" {
		return c.DataRoot
	}
	return c.Graph
}
