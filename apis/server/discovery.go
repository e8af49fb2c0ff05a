package server

import (
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

func apiGroup() metav1.APIGroup {
	gv := metav1.GroupVersionForDiscovery{GroupVersion: v1.APIVersion, Version: v1.Version}
	return metav1.APIGroup{
		TypeMeta:         metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
		Name:             v1.Group,
		Versions:         []metav1.GroupVersionForDiscovery{gv},
		PreferredVersion: gv,
	}
}

func (h *Handler) groupList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, metav1.APIGroupList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
		Groups:   []metav1.APIGroup{apiGroup()},
	})
}

func (h *Handler) group(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, apiGroup())
}

// resourceList is what kubectl's discovery reads to learn kinds and verbs.
func (h *Handler) resourceList(w http.ResponseWriter, r *http.Request) {
	list := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: v1.APIVersion}
	for _, res := range resources.All {
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: res.Plural, SingularName: res.Singular, Namespaced: res.Namespaced, Kind: res.Kind,
			ShortNames: res.ShortNames,
			Verbs:      metav1.Verbs{"create", "delete", "get", "list", "patch", "update", "watch"},
		})
		if res.StatusSubresource() {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: res.Plural + "/status", Namespaced: res.Namespaced, Kind: res.Kind,
				Verbs: metav1.Verbs{"get", "patch", "update"},
			})
		}
	}
	writeJSON(w, http.StatusOK, list)
}
