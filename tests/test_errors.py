"""The one error type: a parameter named in Python's terms becomes the command's flag."""

from hfcls.errors import HfclsError, did_you_mean


def test_a_parameter_error_names_the_flag_a_command_has_for_it():
    error = HfclsError("device 'foo': not a device torch knows; use cpu, cuda, cuda:1", param="device")
    assert str(error).startswith("device 'foo'")
    assert error.for_flags({"device": "--device"}) == "--device 'foo': not a device torch knows; use cpu, cuda, cuda:1"


def test_a_message_without_a_flag_for_its_parameter_is_shown_as_is():
    error = HfclsError("top_k must be at least 1, got 0", param="top_k")
    assert error.for_flags({"device": "--device"}) == "top_k must be at least 1, got 0"
    assert HfclsError("plain").for_flags({"device": "--device"}) == "plain"


def test_did_you_mean_names_the_closest_choice_only():
    assert did_you_mean("adamw", ["adam", "adamw", "sgd"]) == ' (did you mean "adamw"?)'
    assert did_you_mean("zzz", ["adam", "sgd"]) == ""
