import pytest

from tests.conftest import ARTIFACTS
from tests.e2e.conftest import login
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_marketer_signs_in_and_sees_the_customer_list(page, live_server, marketer):
    # given two customers
    CustomerFactory(external_id="hh-1", name="Ada Lovelace")
    CustomerFactory(external_id="hh-2", name="Grace Hopper", marketing_consent=False)
    # when the marketer signs in and opens Customers
    login(page, live_server, "marketer")
    page.click("text=Customers")
    # then both are listed, searchable
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 2
    assert "Ada Lovelace" in page.inner_text("#result_list")
    page.fill("#searchbar", "Grace")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-customers.png"), full_page=True)


def test_a_marketer_cannot_change_customers(page, live_server, marketer):
    customer = CustomerFactory(name="Read Only")
    login(page, live_server, "marketer")
    page.goto(f"{live_server.url}/admin/shop/customer/{customer.id}/change/")
    # a view-only page: no save button
    assert page.locator("input[name=_save]").count() == 0
    assert "Read Only" in page.content()
