package admin

import (
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
)

// view returns h as the Admin API shows it: without secret values unless the request
// asks with ?reveal=true (which, like every hook route, needs the admin token when one
// is set). See hooks.Hook.View.
func (s *Server) view(ctx *fasthttp.RequestCtx, h *hooks.Hook) *hooks.Hook {
	return h.View(s.cfg.Now(), ctx.QueryArgs().GetBool("reveal"))
}

// rotationFormTypes types the non-string fields of a flat form rotation body.
var rotationFormTypes = map[string]string{"expire_previous_after": "int"}

// POST /event-hooks/{id}/rotate-secret: a new signing secret (hooks.RotationRequest), the
// replaced one signing too until the overlap ends. The answer is the entity revealed (as
// ?reveal=true shows it), so that a generated secret can be handed to the receivers.
func (s *Server) rotateSecret(ctx *fasthttp.RequestCtx, p params) error {
	body, err := readBody(ctx, rotationFormTypes)
	if err != nil {
		return err
	}
	req, err := hooks.ParseRotation(body)
	if err != nil {
		return err
	}
	stored, err := s.storeHook(ctx, func(*hooks.Snapshot) (*hooks.Hook, error) {
		old, err := s.lookup(p.id)
		if err != nil {
			return nil, err
		}
		h := old.Clone()
		if _, err := hooks.Rotate(h, req.Secret, req.OverlapSeconds(), s.cfg.Now()); err != nil {
			return nil, err
		}
		return h, nil
	})
	if err != nil {
		return err
	}
	return respond(ctx, fasthttp.StatusOK, stored.View(s.cfg.Now(), true))
}
