package server

import (
	"net/http"

	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/openapi"
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

// getOnly registers kube-openapi's handlers on the mux for GET (and HEAD)
// alone: the OpenAPI documents are read-only.
type getOnly struct{ mux *http.ServeMux }

func (g getOnly) Handle(path string, h http.Handler)       { g.mux.Handle("GET "+path, h) }
func (g getOnly) HandlePrefix(path string, h http.Handler) { g.mux.Handle("GET "+path, h) }

// serveOpenAPI serves /openapi/v2 (JSON or protobuf, as kubectl asks) and
// /openapi/v3 with the left4me.io/v1alpha1 document, both built once from
// the generated definitions. Any authenticated user may read them, as
// discovery.
func serveOpenAPI(mux *http.ServeMux) error {
	v2, err := openapi.V2()
	if err != nil {
		return err
	}
	handler.NewOpenAPIService(v2).RegisterOpenAPIVersionedService("/openapi/v2", getOnly{mux})
	v3, err := openapi.V3()
	if err != nil {
		return err
	}
	s3 := handler3.NewOpenAPIService()
	s3.UpdateGroupVersion(openapi.GroupVersionPath, v3)
	return s3.RegisterOpenAPIV3VersionedService("/openapi/v3", getOnly{mux})
}
