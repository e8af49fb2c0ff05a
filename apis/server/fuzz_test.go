package server

import (
	"encoding/json"
	"testing"

	"github.com/left4me/left4me/apis/resources"
)

// FuzzDecodeStrict: the API's body decoder never panics, and what it
// accepts survives a round trip through JSON unchanged.
func FuzzDecodeStrict(f *testing.F) {
	f.Add(uint8(0), []byte(`{"apiVersion":"left4me.io/v1alpha1","kind":"Instance","metadata":{"name":"a"},"spec":{"blueprintRef":{"name":"b"},"port":27015}}`))
	f.Add(uint8(1), []byte(`{"spec":{"overlays":["a"],"cvars":[{"name":"a","value":"b"}],"resources":{"memoryMax":"2Gi"}}}`))
	f.Add(uint8(2), []byte(`{"spec":{"port":"x"}}`))
	f.Add(uint8(3), []byte(`{"metadata":{"name":"a","name":"b"}}`))
	f.Add(uint8(4), []byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		res := resources.All[int(kind)%len(resources.All)]
		obj, err := decode(&request{res: res, validation: fieldValidationStrict}, data)
		if err != nil {
			return
		}
		once, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("accepted object does not encode: %v", err)
		}
		again, err := decode(&request{res: res, validation: fieldValidationStrict}, once)
		if err != nil {
			t.Fatalf("accepted object does not decode after encoding: %v\n%s", err, once)
		}
		twice, _ := json.Marshal(again)
		if string(once) != string(twice) {
			t.Fatalf("round trip changed the object:\n%s\n%s", once, twice)
		}
	})
}
