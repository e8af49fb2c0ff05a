package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version name the API group every left4me resource belongs to.
const (
	Group   = "left4me.io"
	Version = "v1alpha1"
)

// GroupVersion is the apiVersion every object of this package carries.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// APIVersion is GroupVersion as written in YAML ("left4me.io/v1alpha1").
var APIVersion = GroupVersion.String()

// Object is what every top-level left4me resource is: a runtime.Object with
// ObjectMeta accessors.
type Object interface {
	runtime.Object
	metav1.Object
}

// ListObject is what every List type is.
type ListObject interface {
	runtime.Object
	metav1.ListInterface
}
