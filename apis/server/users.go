package server

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/left4me/left4me/apis/auth"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/storage"
)

// setPassword turns a User's write-only spec.password into the stored
// status (its argon2id hash) before the User is written, and keeps the
// current hash when an update brings no password. The status a client sent
// is never kept: only the server writes it. For other kinds it does nothing.
// It reports whether the store must write the status too.
func setPassword(req *request, cur, obj v1.Object) (bool, error) {
	u, ok := obj.(*v1.User)
	if !ok {
		return false, nil
	}
	switch {
	case u.Spec.Password != "":
		now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
		u.Status = v1.UserStatus{PasswordHash: auth.HashPassword(u.Spec.Password), PasswordChangedAt: &now}
		u.Spec.Password = ""
	case cur != nil:
		u.Status = *cur.(*v1.User).Status.DeepCopy()
	default:
		return false, invalid(req.res, u.Name, field.ErrorList{field.Required(field.NewPath("spec", "password"), "a new User needs a password (l4mctl user create NAME --password-stdin)")})
	}
	return true, nil
}

// redacted is what the API answers for obj: a User's password hash is
// removed (from lists and watch events too). An admin may read Users, but
// an argon2id hash is still worth an offline attack, so it never leaves
// the server.
func redacted(obj any) any {
	switch o := obj.(type) {
	case *v1.User:
		c := o.DeepCopy()
		c.Status.PasswordHash = ""
		return c
	case *v1.UserList:
		c := o.DeepCopy()
		for i := range c.Items {
			c.Items[i].Status.PasswordHash = ""
		}
		return c
	}
	return obj
}

// userWriteOptions adds SpecAndStatus for a User, whose status setPassword made.
func userWriteOptions(opts storage.UpdateOptions, withStatus bool) storage.UpdateOptions {
	if withStatus {
		opts.SpecAndStatus = true
	}
	return opts
}
